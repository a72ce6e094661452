"""Tiny training jobs for the tests: synthetic paired data, a tiny NAFNet option file, log reading."""
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

from ddr_basicsr.data.synthetic import write_synthetic_pairs

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_NAFNET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}


def write_paired_dataset(root: Path, scale: int = 1) -> Path:
    """8 train and 2 val pairs of 48x48 gt PNGs (smooth random images); lq is a Gaussian blur of gt (scale 1)
    or its bicubic downscale by ``scale``."""
    return write_synthetic_pairs(root, {'train': 8, 'val': 2}, size=48, scale=scale)


def make_options(dataset_root: Path, clip_path: str, name: str = 'tiny') -> dict:
    paired = {'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}}
    return {
        'name': name, 'model_type': 'RestorationModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {**paired, 'name': 'synth_train', 'dataroot_gt': str(dataset_root / 'train' / 'gt'),
                      'dataroot_lq': str(dataset_root / 'train' / 'lq'), 'filename_tmpl': '{}', 'gt_size': 32,
                      'use_hflip': True, 'use_rot': True, 'use_shuffle': True, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {**paired, 'name': 'synth_val', 'dataroot_gt': str(dataset_root / 'val' / 'gt'),
                    'dataroot_lq': str(dataset_root / 'val' / 'lq')},
        },
        'network_g': dict(TINY_NAFNET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
            'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': 9, 'eta_min': 1e-7},
            'total_iter': 6, 'warmup_iter': -1, 'use_grad_clip': True, 'grad_clip_norm': 0.01, 'ema_decay': 0.9,
            'pixel_opt': {'type': 'PSNRLoss', 'loss_weight': 1.0},
            'ddr_opt': {'type': 'DDRLoss', 'loss_weight': 2.0, 'pretrained': clip_path},
        },
        'val': {'val_freq': 3, 'save_img': True, 'window_size': 16,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def write_options(path: Path, opt: dict) -> str:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


def read_logs(folder: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted(folder.glob('*.log')))


def subprocess_env(**extra: str) -> dict:
    """The environment for a training subprocess: one OpenMP thread, the repository importable."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')]))
    return {**os.environ, 'PYTHONPATH': python_path, 'OMP_NUM_THREADS': '1', **extra}


def logged_iterations(log: str) -> List[int]:
    """Iterations of BasicSR's training-progress lines (``[name..][epoch: e, iter: i, lr:(...)] ...``)."""
    return [int(value.replace(',', '')) for value in re.findall(r'\[epoch:\s*\d+, iter:\s*([\d,]+), lr:', log)]


def resumed_at(log: str) -> Optional[Tuple[int, int]]:
    """(epoch, iteration) of BasicSR's "Resuming training from epoch: e, iter: i." line, or None."""
    match = re.search(r'Resuming training from epoch:\s*(\d+), iter:\s*(\d+)', log)
    return (int(match.group(1)), int(match.group(2))) if match else None
