"""``ddr-train``: BasicSR's training pipeline with the ddr-basicsr plugin.

    ddr-train -opt options/X.yml [--launcher none|pytorch|slurm] [--auto_resume] [--debug]
              [--local_rank N] [--force_yml key:sub=value ...] [--root DIR]
    python -m ddr_basicsr.train -opt ...
    torchrun --nproc_per_node=N -m ddr_basicsr.train -opt X.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are created under ``--root``, by default the current directory. Stock
``python -m basicsr.train`` behaves the same (see ``ddr_basicsr.host``).
"""
from ddr_basicsr.host.pipelines import train_main as main

__all__ = ['main']

if __name__ == '__main__':
    main()
