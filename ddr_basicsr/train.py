"""Train with BasicSR's pipeline, the ddr-basicsr plugin registered and basicsr 1.4.2's host bugs fixed.

    ddr-train -opt options/X.yml [--launcher none|pytorch|slurm] [--auto_resume] [--debug]
              [--local_rank N] [--force_yml key:sub=value ...] [--root DIR]
    python -m ddr_basicsr.train -opt ...        python ddr_basicsr/train.py -opt ...
    torchrun --nproc_per_node=N -m ddr_basicsr.train -opt X.yml --launcher pytorch

``experiments/``, ``tb_logger/`` (and ``results/`` for ddr-test) are created under ``--root``, by default
the current directory. Relative ``dataroot_*``, ``resume_state`` and ``pretrain_network_*`` paths are
resolved against the current directory. Before anything is created the options are checked: model,
network and loss types must be registered, every loss block must be one the model reads, dataset
folders must exist and ``num_gpu`` must match the machine.
"""
import os
import sys

if __package__ in (None, ''):  # run as a script: put the repository root, not ddr_basicsr/, on sys.path
    import script_path  # noqa: F401  (ddr_basicsr/script_path.py)

import argparse  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from os import path as osp  # noqa: E402
from typing import Callable, Iterator, List, Optional, Sequence, Tuple  # noqa: E402

import torch  # noqa: E402

import ddr_basicsr  # noqa: E402,F401  (registers the plugin's archs, losses, models and metrics)
from ddr_basicsr import host_fixes  # noqa: E402
import basicsr.train as basicsr_train  # noqa: E402
from basicsr.utils import options as basicsr_options  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY  # noqa: E402
from ddr_basicsr.models.restoration_model import RestorationModel, check_loss_block, loss_block_keys  # noqa: E402

_BASICSR_PARSE_OPTIONS = basicsr_options.parse_options

# Loss blocks read by basicsr 1.4.2's own models (for a basicsr model, the first class of its MRO found here decides).
STOCK_MODEL_LOSS_KEYS = {
    'SRModel': ('pixel_opt', 'perceptual_opt'),
    'SRGANModel': ('pixel_opt', 'ldl_opt', 'perceptual_opt', 'gan_opt'),
    'HiFaceGANModel': ('pixel_opt', 'perceptual_opt', 'feature_matching_opt', 'gan_opt'),
    'VideoRecurrentGANModel': ('pixel_opt', 'perceptual_opt', 'gan_opt'),
    'StyleGAN2Model': ('gan_opt', ),
}


def _registered(registry, name: str) -> bool:
    return name in registry or f'{name}_basicsr' in registry


def _stock_loss_keys(model_cls: type) -> Optional[Tuple[str, ...]]:
    """Loss blocks a basicsr model reads; None for models from elsewhere (they may read more)."""
    if not model_cls.__module__.startswith('basicsr.'):
        return None
    for cls in model_cls.__mro__:
        if cls.__module__.startswith('basicsr.') and cls.__name__ in STOCK_MODEL_LOSS_KEYS:
            return STOCK_MODEL_LOSS_KEYS[cls.__name__]
    return None


def check_model_options(opt: dict, is_train: bool) -> None:
    """Model and network types are registered; in training every loss block is one the model reads and builds."""
    model_type, network_type = opt.get('model_type'), (opt.get('network_g') or {}).get('type')
    if not _registered(MODEL_REGISTRY, str(model_type)):
        raise ValueError(f"unknown model_type '{model_type}'; registered models: "
                         f"{', '.join(sorted(name for name, _ in MODEL_REGISTRY))}")
    if not _registered(ARCH_REGISTRY, str(network_type)):
        raise ValueError(f"unknown network_g.type '{network_type}'; registered networks: "
                         f"{', '.join(sorted(name for name, _ in ARCH_REGISTRY))}")
    if not is_train:
        return
    train_opt = opt.get('train') or {}
    model_cls = MODEL_REGISTRY.get(model_type if model_type in MODEL_REGISTRY else f'{model_type}_basicsr')
    if issubclass(model_cls, RestorationModel):
        for key in loss_block_keys(train_opt):
            check_loss_block(key, train_opt[key])
        return
    read_keys = _stock_loss_keys(model_cls)
    if read_keys is None:
        return
    ignored = [key for key in loss_block_keys(train_opt) if key not in read_keys]
    if ignored:
        blocks = ', '.join(f'train.{key}' for key in ignored)
        raise ValueError(f"model_type {model_type} ignores the loss block(s) {blocks} "
                         f"(it reads only {', '.join(read_keys)}); set model_type: RestorationModel to train with them")


def check_device_options(opt: dict) -> None:
    """``num_gpu`` and ``prefetch_mode: cuda`` need CUDA."""
    if opt.get('num_gpu', 0) != 0 and not torch.cuda.is_available():
        raise ValueError(f"num_gpu is {opt['num_gpu']} but CUDA is not available; set num_gpu: 0 to run on the CPU "
                         '(or add --force_yml num_gpu=0)')
    train_set = (opt.get('datasets') or {}).get('train') or {}
    if train_set.get('prefetch_mode') == 'cuda' and not torch.cuda.is_available():
        raise ValueError("datasets.train.prefetch_mode is 'cuda' but CUDA is not available; use ~ or cpu")


def check_dataset_paths(opt: dict) -> None:
    """Every ``dataroot_*`` and ``meta_info_file`` exists; relative paths become absolute (current directory)."""
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        for key, value in dataset_opt.items():
            if value is None or not (key.startswith('dataroot_') or key == 'meta_info_file'):
                continue
            if not osp.exists(value):
                raise FileNotFoundError(f"datasets.{phase}.{key}: '{value}' does not exist (relative paths are "
                                        f'resolved against the current directory {os.getcwd()})')
            dataset_opt[key] = osp.abspath(value)


def check_options(opt: dict, is_train: bool) -> None:
    """All option checks run before any folder or file is created."""
    check_model_options(opt, is_train)
    check_device_options(opt)
    check_dataset_paths(opt)


def parse_and_check_options(root_path: str, is_train: bool = True):
    """BasicSR's ``parse_options`` followed by ``check_options``."""
    opt, args = _BASICSR_PARSE_OPTIONS(root_path, is_train=is_train)
    check_options(opt, is_train)
    return opt, args


ROOT_HELP = ('--root DIR: experiments/, tb_logger/ and results/ are created under DIR (default: the current '
             'directory); every other flag is BasicSR\'s:')


def split_root_argument(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """Take ``--root DIR`` out of ``argv`` (default: current directory) and explain it when help is asked for;
    rename torch.distributed.launch's ``--local-rank`` to BasicSR's ``--local_rank``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--root', default=os.getcwd())
    known, rest = parser.parse_known_args(list(argv))
    if '-h' in rest or '--help' in rest:
        print(ROOT_HELP)
    rest = [arg.replace('--local-rank', '--local_rank', 1) if arg.startswith('--local-rank') else arg for arg in rest]
    return osp.abspath(known.root), rest


@contextmanager
def command_line(args: List[str]) -> Iterator[None]:
    """Show ``args`` to BasicSR's argparse (it reads sys.argv) and restore sys.argv afterwards."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else 'ddr-train', *args]
    try:
        yield
    finally:
        sys.argv = saved


def prepare_host() -> None:
    """Apply the basicsr host fixes and start a fresh log for this run."""
    host_fixes.apply()
    host_fixes.reset_root_logger()


def run_pipeline(pipeline_module, pipeline: Callable[[str], None], parse_options: Callable,
                 argv: Optional[Sequence[str]]) -> None:
    """Run a BasicSR pipeline of ``pipeline_module`` with our option parsing, the host fixes and ``--root``."""
    root, args = split_root_argument(sys.argv[1:] if argv is None else argv)
    prepare_host()
    pipeline_module.parse_options = parse_options
    with command_line(args):
        pipeline(root)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``ddr-train``: BasicSR's train pipeline with ``root_path = --root`` (default: current directory)."""
    run_pipeline(basicsr_train, basicsr_train.train_pipeline, parse_and_check_options, argv)


if __name__ == '__main__':
    main()
