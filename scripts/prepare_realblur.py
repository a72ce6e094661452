#!/usr/bin/env python
"""Prepare RealBlur-J and RealBlur-R (Rim et al., ECCV 2020) for ``options/*_realblur_*.yml``.

Input (``--input``): the RealBlur root holding the official list files
  RealBlur_J_train_list.txt, RealBlur_J_test_list.txt, RealBlur_R_train_list.txt, RealBlur_R_test_list.txt
and the folders they name (RealBlur-J_ECC_IMCORR_centroid_itensity_ref/sceneNNN/{gt,blur}/{gt_k,blur_k}.png,
RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/...). Each list line is ``<gt path> <blur path>``,
relative to the root.
Output (``--output``, default datasets):
  RealBlur_J/train/{target,input}.lmdb, RealBlur_J/test/{target,input}.lmdb, and the same for RealBlur_R
  (``--backend disk``: PNG folders of the same names without ``.lmdb``); pair names ``sceneNNN_k`` from
  the GT path. Whole images by default (about 680x770, larger than the training crops); ``--crop-size``
  cuts the train split into sub-images instead, written as train/{target,input}_crops.lmdb.
Official counts: 3758 train and 980 test pairs per variant. Evaluate with the ECC-aligned metrics
(``calculate_psnr_ecc``/``calculate_ssim_ecc``, used by options/test/*realblur*.yml).

Example: python scripts/prepare_realblur.py --input /data/RealBlur --output datasets --variants J
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ddr_basicsr.data_prep import (
    ImagePair,
    add_common_arguments,
    crop_from_args,
    output_path,
    output_stems,
    prepare_split,
)

OFFICIAL_PAIRS = {'train': 3758, 'test': 980}


def list_file(root: Path, variant: str, split: str) -> Path:
    return root / f'RealBlur_{variant}_{split}_list.txt'


def pair_name(gt_relative: str) -> str:
    """``sceneNNN_k`` for ``.../sceneNNN/gt/gt_k.png``."""
    path = Path(gt_relative)
    stem = path.stem[len('gt_'):] if path.stem.startswith('gt_') else path.stem
    return f'{path.parent.parent.name}_{stem}'


def read_pair_list(root: Path, variant: str, split: str) -> List[ImagePair]:
    """Pairs named by one official list file; a missing list or image is an error naming it."""
    listing = list_file(root, variant, split)
    if not listing.is_file():
        raise FileNotFoundError(f'List file not found: {listing} (--input must be the RealBlur root that holds '
                                f'RealBlur_{{J,R}}_{{train,test}}_list.txt)')
    pairs = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f'{listing}:{number}: expected "<gt path> <blur path>", got {line!r}')
        gt, lq = root / fields[0], root / fields[1]
        for path in (gt, lq):
            if not path.is_file():
                raise FileNotFoundError(f'{listing}:{number} names {path}, which does not exist')
        pairs.append(ImagePair(pair_name(fields[0]), gt, lq))
    return pairs


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', type=Path, required=True, help='RealBlur root with the *_list.txt files')
    parser.add_argument('--output', type=Path, default=Path('datasets'), help='default datasets')
    parser.add_argument('--variants', nargs='+', choices=['J', 'R'], default=['J', 'R'])
    parser.add_argument('--splits', nargs='+', choices=sorted(OFFICIAL_PAIRS), default=['train', 'test'])
    add_common_arguments(parser, default_crop_size=0, default_step=256)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for variant in args.variants:
        for split in args.splits:
            pairs = read_pair_list(args.input, variant, split)
            folder = args.output / f'RealBlur_{variant}' / split
            crop = crop_from_args(args) if split == 'train' else None
            gt_stem, lq_stem = output_stems(crop)
            prepare_split(f'RealBlur-{variant} {split}', pairs, output_path(folder, gt_stem, args.backend),
                          output_path(folder, lq_stem, args.backend), args, crop=crop,
                          expected_pairs=OFFICIAL_PAIRS[split])
    return 0


if __name__ == '__main__':
    sys.exit(main())
