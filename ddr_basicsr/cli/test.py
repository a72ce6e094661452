"""``ddr-test``: BasicSR's test pipeline with the ddr-basicsr plugin.

    ddr-test -opt options/test/X.yml [--launcher ...] [--force_yml ...] [--root DIR]
    python -m ddr_basicsr.test -opt ...

Results (log, images when ``val.save_img``) go to ``<root>/results/<name>``, root being the current
directory unless ``--root`` is given. ``val.save_img`` defaults to false and ``val.suffix`` to none.
"""
from ddr_basicsr.host.pipelines import test_main as main

__all__ = ['main']

if __name__ == '__main__':
    main()
