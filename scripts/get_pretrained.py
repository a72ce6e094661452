#!/usr/bin/env python
"""Download and verify the official NAFNet / Restormer GoPro checkpoints used by options/finetune/.

    python scripts/get_pretrained.py              # into experiments/pretrained_models/
    python scripts/get_pretrained.py --offline    # only verify; say where to put missing files

Exit status 0 when every checkpoint is in place and verified, 1 otherwise. The list, the sources and the checks
are in ddr_basicsr/paper/official_checkpoints.py.
"""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, installed or not

from ddr_basicsr.paper.official_checkpoints import OFFICIAL_CHECKPOINTS, PRETRAINED_FOLDER, run


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', metavar='FILE',
                        help='checkpoints to get (default: all of '
                             f'{", ".join(item.file_name for item in OFFICIAL_CHECKPOINTS)})')
    parser.add_argument('--folder', default=PRETRAINED_FOLDER, help=f'where they go (default: {PRETRAINED_FOLDER})')
    parser.add_argument('--offline', action='store_true', help='download nothing; verify what is there')
    args = parser.parse_args(argv)
    existing = args.folder
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing and not os.path.isdir(existing):
        parser.error(f'--folder {args.folder}: {existing} is a file, not a folder; give a folder for the checkpoints')
    status, lines = run(args.folder, args.names, args.offline)
    for line in lines:
        print(line)
    return status


if __name__ == '__main__':
    sys.exit(main())
