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
rebuilds them); outputs appear only when complete, and an existing one is replaced only by a complete
one, so a run killed at any moment is simply run again. An unreadable image (a truncated JPEG among
them) is named and its split is not written: exit status 1.

Example: python scripts/prepare_gopro.py --input /data/GOPRO_Large --output datasets/GoPro --workers 4
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ddr_basicsr.cli.arguments import add_prepare_arguments, crop_from_args, run_plans_from_args
from ddr_basicsr.data.layouts import gopro_plans
from ddr_basicsr.data.preparation import print_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', type=Path, required=True,
                        help='GOPRO_Large root, or the root of train|test/input|target')
    parser.add_argument('--output', type=Path, default=Path('datasets/GoPro'), help='default datasets/GoPro')
    parser.add_argument('--blur-folder', default='blur', help='LQ folder of GOPRO_Large sequences (default blur)')
    add_prepare_arguments(parser, default_crop_size=512, default_step=256)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plans = gopro_plans(args.input, args.output, splits=args.splits, blur_folder=args.blur_folder,
                        backend=args.backend, crop=crop_from_args(args))
    return print_report(run_plans_from_args(plans, args), 'prepare_gopro.py')


if __name__ == '__main__':
    sys.exit(main())
