#!/usr/bin/env python
"""Prepare GoPro (Nah et al., CVPR 2017) for ``options/*_gopro_*.yml``.

Input (``--input``), either layout, detected per split:
  GOPRO_Large   <input>/{train,test}/<GOPRxxxx_xx_xx>/{blur,blur_gamma,sharp}/<frame>.png
                (the LQ folder is ``blur``, as in NAFNet/Restormer; see --blur-folder); pair names
                ``<sequence>_<frame>``
  flat          <input>/{train,test}/{input,target}/<name>.png (NAFNet's and Restormer's re-packaged
                copy); pair names = file stems
Output (``--output``, default datasets/GoPro, the paths of NAFNet's docs/GoPro.md):
  train/blur_crops.lmdb, train/sharp_crops.lmdb   512x512 sub-images every 256 px (8 per 1280x720
                                                  frame), keys ``<name>_s001`` ... ``_s008``
  test/input.lmdb, test/target.lmdb               the whole test pairs
  (``--backend disk``: PNG folders of the same names without ``.lmdb``)
Official counts: 2103 train and 1111 test pairs. Re-running skips complete outputs (``--overwrite``
rebuilds them); outputs appear only when complete.

Example: python scripts/prepare_gopro.py --input /data/GOPRO_Large --output datasets/GoPro --workers 4
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
    pair_by_stem,
    prepare_split,
)

OFFICIAL_PAIRS = {'train': 2103, 'test': 1111}
OUTPUT_STEMS = {'train': ('sharp_crops', 'blur_crops'), 'test': ('target', 'input')}  # (GT, LQ)


def find_pairs(split_dir: Path, blur_folder: str) -> List[ImagePair]:
    """Pairs of one split in either supported layout."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f'{split_dir} not found: --input must contain train/ and test/ of GOPRO_Large '
                                'or of the flat input/target layout')
    if (split_dir / 'input').is_dir() or (split_dir / 'target').is_dir():
        return pair_by_stem(split_dir / 'target', split_dir / 'input')
    sequences = sorted(path for path in split_dir.iterdir() if path.is_dir())
    if not sequences:
        raise FileNotFoundError(f'No sequence folders (GOPRxxxx_xx_xx) and no input/target folders in {split_dir}')
    pairs: List[ImagePair] = []
    for sequence in sequences:
        pairs.extend(pair_by_stem(sequence / 'sharp', sequence / blur_folder, prefix=f'{sequence.name}_'))
    return pairs


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', type=Path, required=True,
                        help='GOPRO_Large root, or the root of train|test/input|target')
    parser.add_argument('--output', type=Path, default=Path('datasets/GoPro'), help='default datasets/GoPro')
    parser.add_argument('--splits', nargs='+', choices=sorted(OFFICIAL_PAIRS), default=['train', 'test'])
    parser.add_argument('--blur-folder', default='blur', help='LQ folder of GOPRO_Large sequences (default blur)')
    add_common_arguments(parser, default_crop_size=512, default_step=256)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for split in args.splits:
        pairs = find_pairs(args.input / split, args.blur_folder)
        gt_stem, lq_stem = OUTPUT_STEMS[split]
        prepare_split(f'GoPro {split}', pairs, output_path(args.output / split, gt_stem, args.backend),
                      output_path(args.output / split, lq_stem, args.backend), args,
                      crop=crop_from_args(args) if split == 'train' else None, expected_pairs=OFFICIAL_PAIRS[split])
    return 0


if __name__ == '__main__':
    sys.exit(main())
