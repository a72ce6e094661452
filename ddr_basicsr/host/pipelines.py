"""``ddr-train`` and ``ddr-test``: BasicSR's own train and test pipelines, rooted at ``--root``.

The pipelines are basicsr's; what differs from ``python -m basicsr.train`` is where ``experiments/``,
``tb_logger/`` and ``results/`` go (``--root``, default the current directory) and that every run they start is a
plugin run (:mod:`.seam`), also one that names nothing of the plugin's: safe YAML, option checks, pre-flight.
"""
import argparse
import logging
import os
import sys
from contextlib import contextmanager
from os import path as osp
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

ROOT_HELP = ('usage: {program} [--root DIR] [--skip-data-check] -opt OPT [BasicSR\'s options below]\n\n'
             '  --root DIR         experiments/, tb_logger/ and results/ are created under DIR (default: the '
             'current directory)\n'
             '  --skip-data-check  do not open every training/validation image before training starts\n\n'
             'Every other option is BasicSR\'s:')


def split_root_argument(argv: Sequence[str], program: str = 'ddr-train') -> Tuple[str, List[str]]:
    """Take ``--root DIR`` out of ``argv`` (default: current directory) and explain it when help is asked for."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--root', default=os.getcwd())
    known, rest = parser.parse_known_args(list(argv))
    if '-h' in rest or '--help' in rest:
        print(ROOT_HELP.format(program=program))
    return osp.abspath(known.root), rest


def reset_root_logger(name: str = 'basicsr') -> None:
    """Forget BasicSR's logger set-up so that the next run in this process opens its own log file."""
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    basicsr_logger.initialized_logger.pop(name, None)


@contextmanager
def command_line(program: str, args: List[str]) -> Iterator[None]:
    """Show ``args`` to BasicSR's argparse (it reads sys.argv) and restore sys.argv afterwards."""
    saved = sys.argv
    sys.argv = [program, *args]
    try:
        yield
    finally:
        sys.argv = saved


def run_pipeline(program: str, pipeline: Callable[[str], None], argv: Optional[Sequence[str]]) -> None:
    """Run a BasicSR pipeline as a plugin run with ``root_path = --root`` and a fresh log."""
    from ddr_basicsr.host import attach, seam
    attach()
    root, args = split_root_argument(sys.argv[1:] if argv is None else argv, program)
    reset_root_logger()
    from ddr_basicsr.host.run_options import release_experiment_lock
    from ddr_basicsr.training.preemption import restore_stop_handlers
    seam.RUN.forced = True
    try:
        with command_line(program, args):
            pipeline(root)
    finally:
        seam.RUN.forced = False
        release_experiment_lock()
        restore_stop_handlers()


def train_main(argv: Optional[Sequence[str]] = None) -> None:
    """``ddr-train``: BasicSR's train pipeline with ``root_path = --root`` (default: current directory)."""
    import basicsr.train
    run_pipeline('ddr-train', basicsr.train.train_pipeline, argv)


def test_main(argv: Optional[Sequence[str]] = None) -> None:
    """``ddr-test``: BasicSR's test pipeline with ``root_path = --root`` (default: current directory)."""
    import basicsr.test
    run_pipeline('ddr-test', basicsr.test.test_pipeline, argv)
