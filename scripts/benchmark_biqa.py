"""Blind-IQA scoring speed: images/s of DDR on 1024x768 JPEGs read from disk (and from memory).

Two figures are printed:

* ``from disk``: the whole ``ddr-score`` path (JPEG decoding in worker processes, batches of equal-size
  images, CLIP on the device), the number the issue's target (5x the reference's 112 images/s on an
  H100) is about;
* ``on device``: images already decoded and on the device, as the reference figure was measured.

Fidelity: the scores of the first ``--check-images`` images are compared with the float32 path scoring
one image at a time; the largest absolute difference is printed (target: below 1e-4).

    python scripts/benchmark_biqa.py --device cuda --num-images 512 --batch-size 64 --workers 12
    python scripts/benchmark_biqa.py --device cpu --num-images 16 --batch-size 8  # smoke (random CLIP by default)
"""
import argparse
import sys
from typing import Optional, Sequence

from ddr_basicsr.tools.benchmarking import add_biqa_arguments, biqa_benchmark


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_biqa_arguments(parser)
    for line in biqa_benchmark(parser.parse_args(argv)):
        print(line, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
