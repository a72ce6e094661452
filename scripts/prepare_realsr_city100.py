#!/usr/bin/env python
"""Prepare the merged RealSR + City100 set of the DDR paper (Sec. 4.1, Table 5) for ``options/*_realsr_city100_*.yml``.

Inputs:
  --realsr   RealSR root (Cai et al., ICCV 2019) holding {Canon,Nikon}/{Train,Test}/<scale>/
             <Cam>_<NNN>_HR.png + <Cam>_<NNN>_LR<scale>.png. V3 LR images are <scale>x smaller than
             HR: they are brought to the HR size by bicubic interpolation (OpenCV INTER_CUBIC), since
             NAFNet and Restormer keep the input resolution. V1/V2 pairs already have equal sizes and are
             used as they are.
  --city100  City100 root (Chen et al., CVPR 2019) holding City100_NikonD5500/ and City100_iPhoneX/,
             each with NNNH.PNG (HR) + NNNL.PNG (LR) of equal size, 100 pairs per camera.
Split (the paper only says both sets are combined for training and testing):
  train = RealSR Train (Canon + Nikon, --scale) + City100 pairs whose id is not in --city100-test-ids
  test  = RealSR Test  (Canon + Nikon, --scale) + City100 pairs with ids 001 016 048 060 098 per camera
          (the test images of the CameraSR demo), i.e. 95 train / 5 test pairs per City100 camera.
  --scale defaults to 4 (an assumption: the paper does not name the RealSR scale).
Output (``--output``, default datasets/RealSR_City100):
  train/target_crops.lmdb, train/input_crops.lmdb   512x512 sub-images every 256 px (keys <name>_s001 ...)
  test/target.lmdb, test/input.lmdb                 whole test pairs
  (``--crop-size 0``: train/{target,input}.lmdb; ``--backend disk``: PNG folders without ``.lmdb``)
  Pair names: RealSR_<Cam>_<NNN> and City100_<camera>_<NNN>.

Example: python scripts/prepare_realsr_city100.py --realsr "/data/RealSR(V3)" --city100 /data/City100
"""
import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ddr_basicsr.data_prep import (
    ImagePair,
    add_common_arguments,
    check_matching,
    check_pairs,
    crop_from_args,
    list_images,
    output_path,
    output_stems,
    prepare_split,
    warn_on_count,
)

REALSR_CAMERAS = ('Canon', 'Nikon')
REALSR_SPLITS = {'train': 'Train', 'test': 'Test'}
CITY100_CAMERAS = ('NikonD5500', 'iPhoneX')
CITY100_PAIRS_PER_CAMERA = 100
CITY100_TEST_IDS = ('001', '016', '048', '060', '098')
_REALSR_NAME = re.compile(r'^(?P<id>.+)_(?:HR|LR(?P<scale>\d+))$')
_CITY100_NAME = re.compile(r'^(?P<id>\d+)(?P<kind>[HL])$', re.IGNORECASE)


def realsr_pairs(root: Path, split: str, scale: int) -> List[ImagePair]:
    """RealSR pairs of one split and scale, both cameras; a stray or unmatched file is an error naming it."""
    pairs = []
    for camera in REALSR_CAMERAS:
        hr: Dict[str, Path] = {}
        lr: Dict[str, Path] = {}
        for stem, path in list_images(root / camera / REALSR_SPLITS[split] / str(scale)).items():
            match = _REALSR_NAME.match(stem)
            if match is None or (match['scale'] is not None and int(match['scale']) != scale):
                raise ValueError(f'Unexpected file {path}: RealSR files are named <id>_HR or <id>_LR{scale}')
            (hr if match['scale'] is None else lr)[match['id']] = path
        check_matching(hr, lr)
        pairs.extend(ImagePair(f'RealSR_{image_id}', hr[image_id], lr[image_id]) for image_id in sorted(hr))
    return pairs


def city100_pairs(root: Path, camera: str) -> Dict[str, ImagePair]:
    """City100 pairs of one camera by id (``001`` ...)."""
    hr: Dict[str, Path] = {}
    lr: Dict[str, Path] = {}
    for stem, path in list_images(root / f'City100_{camera}').items():
        match = _CITY100_NAME.match(stem)
        if match is None:
            raise ValueError(f'Unexpected file {path}: City100 files are named <NNN>H.PNG or <NNN>L.PNG')
        (hr if match['kind'].upper() == 'H' else lr)[match['id']] = path
    check_matching(hr, lr)
    warn_on_count(f'City100 {camera}', len(hr), CITY100_PAIRS_PER_CAMERA)
    return {image_id: ImagePair(f'City100_{camera}_{image_id}', hr[image_id], lr[image_id]) for image_id in sorted(hr)}


def city100_split(root: Path, test_ids: Sequence[str]) -> Dict[str, List[ImagePair]]:
    """City100 pairs of both cameras split by id; every test id must exist for every camera."""
    split: Dict[str, List[ImagePair]] = {'train': [], 'test': []}
    for camera in CITY100_CAMERAS:
        pairs = city100_pairs(root, camera)
        missing = sorted(set(test_ids) - set(pairs))
        if missing:
            raise ValueError(f'City100 {camera} has no pair with test id(s) {", ".join(missing)}')
        for image_id, pair in pairs.items():
            split['test' if image_id in test_ids else 'train'].append(pair)
    check_pairs(split['train'] + split['test'])  # City100 LR and HR must have the same size
    return split


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--realsr', type=Path, required=True, help='RealSR root holding Canon/ and Nikon/')
    parser.add_argument('--city100', type=Path, required=True, help='City100 root holding City100_NikonD5500/ ...')
    parser.add_argument('--output', type=Path, default=Path('datasets/RealSR_City100'),
                        help='default datasets/RealSR_City100')
    parser.add_argument('--scale', type=int, default=4, help='RealSR scale folder to use (default 4)')
    parser.add_argument('--city100-test-ids', nargs='+', default=list(CITY100_TEST_IDS),
                        help=f'City100 ids held out for testing (default {" ".join(CITY100_TEST_IDS)})')
    parser.add_argument('--splits', nargs='+', choices=sorted(REALSR_SPLITS), default=['train', 'test'])
    add_common_arguments(parser, default_crop_size=512, default_step=256)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    city100 = city100_split(args.city100, args.city100_test_ids)
    for split in args.splits:
        pairs = realsr_pairs(args.realsr, split, args.scale) + city100[split]
        crop = crop_from_args(args) if split == 'train' else None
        gt_stem, lq_stem = output_stems(crop)
        folder = args.output / split
        prepare_split(f'RealSR+City100 {split}', pairs, output_path(folder, gt_stem, args.backend),
                      output_path(folder, lq_stem, args.backend), args, crop=crop, lq_scales=(1, args.scale))
    return 0


if __name__ == '__main__':
    sys.exit(main())
