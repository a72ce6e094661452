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
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ddr_basicsr.cli.arguments import add_prepare_arguments, crop_from_args, run_plans_from_args
from ddr_basicsr.data.layouts import CITY100_TEST_IDS, realsr_city100_plans
from ddr_basicsr.data.preparation import print_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--realsr', type=Path, required=True, help='RealSR root holding Canon/ and Nikon/')
    parser.add_argument('--city100', type=Path, required=True, help='City100 root holding City100_NikonD5500/ ...')
    parser.add_argument('--output', type=Path, default=Path('datasets/RealSR_City100'),
                        help='default datasets/RealSR_City100')
    parser.add_argument('--scale', type=int, default=4, help='RealSR scale folder to use (default 4)')
    parser.add_argument('--city100-test-ids', nargs='+', default=list(CITY100_TEST_IDS),
                        help=f'City100 ids held out for testing (default {" ".join(CITY100_TEST_IDS)})')
    add_prepare_arguments(parser, default_crop_size=512, default_step=256)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plans = realsr_city100_plans(args.realsr, args.city100, args.output, splits=args.splits, scale=args.scale,
                                 city100_test_ids=args.city100_test_ids, backend=args.backend,
                                 crop=crop_from_args(args))
    return print_report(run_plans_from_args(plans, args), 'prepare_realsr_city100.py')


if __name__ == '__main__':
    sys.exit(main())
