#!/usr/bin/env python
"""Kill a tiny training job K times (SIGKILL, also inside checkpoint writes; SIGTERM), resume it each time and
compare its final weights with an uninterrupted run. Exit status 0 when every check holds.

    python scripts/fault_injection.py --kills 30 --workdir /tmp/ddr-faults
"""
import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=30, help='number of faults to inject (default 30)')
    parser.add_argument('--total-iter', type=int, default=40, help='iterations of the tiny job (default 40)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the fault plan (default 0)')
    parser.add_argument('--workdir', type=Path, default=None, help='working folder (default: a temporary one)')
    args = parser.parse_args()
    if args.kills < 1 or args.total_iter < 4:
        parser.error('--kills must be >= 1 and --total-iter >= 4')

    import basicsr.train  # noqa: F401  (imported once here, so every forked run starts at once)

    from ddr_basicsr.tools.fault_injection import run_harness
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='ddr-faults-'))
    report = run_harness(workdir, args.kills, args.total_iter, args.seed)
    for event in report.events:
        print(event)
    for path in report.truncated_files:
        print(f'truncated: {path}')
    print(report.summary())
    return 0 if report.recovered and report.bitwise_equal and not report.truncated_files else 1


if __name__ == '__main__':
    sys.exit(main())
