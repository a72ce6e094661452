#!/usr/bin/env python
"""Write every option file of the paper's experiment matrix, and options/README.md, from one settings table.

    python scripts/make_option_files.py           # (re)write; files whose content is unchanged are left alone
    python scripts/make_option_files.py --check   # exit 1 when a file is missing, stale or not generated

Output is deterministic. Edit the tables of ddr_basicsr/tools/option_file_generator.py and re-run; never edit the
generated files by hand.
    options/{nafnet,restormer}_{gopro,realblur,realsr_city100}_{psnr,lpips,ctx,pdl,fdl,ddr}.yml  Tables 4, 5
    options/ablation/nafnet_gopro_ddr_*.yml                                                     Table 6
    options/test/<same stem>.yml, options/test/ablation/*.yml, options/test/official_*.yml
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tables of this checkout, installed or not

from ddr_basicsr.tools.option_file_generator import sync_option_files  # noqa: E402

OPTIONS_DIR = ROOT / 'options'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='only compare; exit 1 when anything differs')
    parser.add_argument('--output', type=Path, default=OPTIONS_DIR, help='default: options/ of this checkout')
    args = parser.parse_args(argv)
    status, lines = sync_option_files(args.output, check=args.check)
    for line in lines:
        print(line)
    return status


if __name__ == '__main__':
    sys.exit(main())
