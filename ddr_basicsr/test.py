"""Test with BasicSR's pipeline, the ddr-basicsr plugin registered and basicsr 1.4.2's host bugs fixed.

    ddr-test -opt options/test/X.yml [--launcher ...] [--force_yml ...] [--root DIR]
    python -m ddr_basicsr.test -opt ...        python ddr_basicsr/test.py -opt ...

Results (log, images when ``val.save_img``) go to ``<root>/results/<name>``, root being the current
directory unless ``--root`` is given. ``val.save_img`` defaults to false and ``val.suffix`` to none.
"""
if __package__ in (None, ''):  # run as a script: put the repository root, not ddr_basicsr/, on sys.path
    import script_path  # noqa: F401  (ddr_basicsr/script_path.py)

from typing import Optional, Sequence  # noqa: E402

from ddr_basicsr import compat  # noqa: E402,F401  (must precede any basicsr import)
import basicsr.test as basicsr_test  # noqa: E402
from ddr_basicsr.train import parse_and_check_options, run_pipeline  # noqa: E402


def parse_and_check_test_options(root_path: str, is_train: bool = False):
    """``parse_and_check_options`` for testing, with defaults for the ``val`` keys BasicSR's test reads."""
    opt, args = parse_and_check_options(root_path, is_train=False)
    if not opt.get('val'):
        opt['val'] = {}
    opt['val'].setdefault('save_img', False)
    opt['val'].setdefault('suffix', None)
    return opt, args


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``ddr-test``: BasicSR's test pipeline with ``root_path = --root`` (default: current directory)."""
    run_pipeline(basicsr_test, basicsr_test.test_pipeline, parse_and_check_test_options, argv)


if __name__ == '__main__':
    main()
