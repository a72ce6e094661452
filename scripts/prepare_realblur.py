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
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ddr_basicsr.cli.arguments import add_prepare_arguments, crop_from_args, run_plans_from_args
from ddr_basicsr.data.layouts import REALBLUR_VARIANTS, realblur_plans
from ddr_basicsr.data.preparation import print_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', type=Path, required=True, help='RealBlur root with the *_list.txt files')
    parser.add_argument('--output', type=Path, default=Path('datasets'), help='default datasets')
    parser.add_argument('--variants', nargs='+', choices=REALBLUR_VARIANTS, default=list(REALBLUR_VARIANTS))
    add_prepare_arguments(parser, default_crop_size=0, default_step=256)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plans = realblur_plans(args.input, args.output, variants=args.variants, splits=args.splits,
                           backend=args.backend, crop=crop_from_args(args))
    return print_report(run_plans_from_args(plans, args), 'prepare_realblur.py')


if __name__ == '__main__':
    sys.exit(main())
