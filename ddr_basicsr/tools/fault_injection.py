"""Fault-injection harness: kill a tiny training job again and again, resume it, compare with an uninterrupted run.

Each run is a child process forked from this one (modules already imported, so a run starts in well under a
second). A run gets one fault, injected by wrapping the code it hits rather than by timing:

* ``kill_after_step``: SIGKILL once an iteration >= the planned one has finished;
* ``kill_in_write``: SIGKILL halfway through writing the bytes of a checkpoint (network or state) of an
  iteration >= the planned one;
* ``kill_before_rename``: SIGKILL after a checkpoint's temporary file is complete but before it is renamed;
* ``kill_in_validation``: SIGKILL inside a validation of an iteration >= the planned one;
* ``sigterm``: SIGTERM to itself after the planned iteration; the run must save, exit with status 75.

After every interrupted run all checkpoint files (``*.pth``, ``*.state``) are loaded: a truncated one counts as a
failure. The next run resumes with ``--auto_resume``; the last one runs to the end. The final weights
(``params`` and ``params_ema``) are compared bit for bit with the uninterrupted run.
"""
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

FAULT_KINDS = ('kill_after_step', 'kill_in_write', 'kill_before_rename', 'kill_in_validation', 'sigterm')


@dataclass
class Fault:
    kind: str
    iteration: int


@dataclass
class HarnessReport:
    kills: int = 0
    sigterms: int = 0
    runs: int = 0
    recovered: bool = False
    bitwise_equal: bool = False
    truncated_files: List[str] = field(default_factory=list)
    events: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f'faults injected: {self.kills} SIGKILL + {self.sigterms} SIGTERM in {self.runs} runs; '
                f"recovered: {'yes' if self.recovered else 'NO'}; final weights bitwise equal to the uninterrupted "
                f"run: {'yes' if self.bitwise_equal else 'NO'}; truncated checkpoint files: "
                f'{len(self.truncated_files)}')


def tiny_job_options(data_root: Path, name: str, total_iter: int) -> Dict[str, Any]:
    """A tiny NAFNet job: augmentation, enlarge ratio 2, EMA, progressive crops, checkpoints every 2 iterations."""
    paired = {'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'}
    return {
        'name': name, 'model_type': 'RestorationModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 7,
        'datasets': {
            'train': {**paired, 'name': 'train', 'dataroot_gt': str(data_root / 'train' / 'gt'),
                      'dataroot_lq': str(data_root / 'train' / 'lq'), 'gt_size': 24, 'use_hflip': True,
                      'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                      'dataset_enlarge_ratio': 2},
            'val': {**paired, 'name': 'val', 'dataroot_gt': str(data_root / 'val' / 'gt'),
                    'dataroot_lq': str(data_root / 'val' / 'lq')},
        },
        'network_g': {'type': 'NAFNet', 'width': 4, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
            'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': total_iter, 'eta_min': 1e-6},
            'total_iter': total_iter, 'warmup_iter': -1, 'ema_decay': 0.9,
            'progressive': {'iters': [total_iter // 2, total_iter], 'gt_sizes': [16, 24], 'mini_batch_sizes': [2, 1]},
            'pixel_opt': {'type': 'PSNRLoss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': 3, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 100, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def plan_faults(count: int, total_iter: int, seed: int) -> List[Fault]:
    """``count`` faults at random iterations in [1, total_iter - 1], in order of iteration."""
    rng = random.Random(seed)
    faults = [Fault(rng.choice(FAULT_KINDS), rng.randint(1, total_iter - 1)) for _ in range(count)]
    return sorted(faults, key=lambda fault: fault.iteration)


def _kill_self(signum: int = signal.SIGKILL) -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signum)


def install_fault(fault: Optional[Fault]) -> None:
    """Wrap the code ``fault`` hits, in this (child) process."""
    if fault is None:
        return
    from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
    from ddr_basicsr.training import checkpoints
    from ddr_basicsr.training.resume import TRAINING

    if fault.kind in ('kill_in_write', 'kill_before_rename'):
        original_write = checkpoints.write_checkpoint

        def write_and_die(obj: Any, path: str, write: Optional[Callable] = None) -> None:
            iteration = Path(path).stem.rsplit('_', 1)[-1]
            if not iteration.isdigit() or int(iteration) < fault.iteration:
                return original_write(obj, path, write)

            def partial_write(stream: Any, data: bytes) -> None:
                stream.write(data if fault.kind == 'kill_before_rename' else data[:len(data) // 2])
                stream.flush()
                _kill_self()
            return original_write(obj, path, partial_write)
        checkpoints.write_checkpoint = write_and_die
    elif fault.kind == 'kill_in_validation':
        original_validation = TrainingGuaranteesMixin.validation

        def validation_and_die(self: Any, dataloader: Any, current_iter: int, *args: Any) -> None:
            if current_iter >= fault.iteration:
                _kill_self()
            original_validation(self, dataloader, current_iter, *args)
        TrainingGuaranteesMixin.validation = validation_and_die
    else:
        original_update = TrainingGuaranteesMixin.update_learning_rate

        def update_and_maybe_die(self: Any, current_iter: int, warmup_iter: int = -1) -> None:
            if current_iter - 1 >= fault.iteration:
                if fault.kind == 'kill_after_step':
                    _kill_self()
                elif TRAINING.stop_signal is None:
                    _kill_self(signal.SIGTERM)
            original_update(self, current_iter, warmup_iter)
        TrainingGuaranteesMixin.update_learning_rate = update_and_maybe_die


def run_child(option_path: Path, root: Path, resume: bool, fault: Optional[Fault],
              timeout: float = 600.0) -> Tuple[str, int]:
    """Fork a training run; return ``('signal', number)`` or ``('exit', status)`` (a run that takes longer than
    ``timeout`` seconds is killed and reported as ``('timeout', 0)``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child never returns
        status = 1
        try:
            import torch
            torch.set_num_threads(1)  # OpenMP must not use a thread pool forked from the parent
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            install_fault(fault)
            from ddr_basicsr.host.pipelines import train_main
            train_main(['--root', str(root), '-opt', str(option_path), *(['--auto_resume'] if resume else [])])
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout
    while True:
        finished, wait_status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 'timeout', 0
        time.sleep(0.02)
    if os.WIFSIGNALED(wait_status):
        return 'signal', os.WTERMSIG(wait_status)
    return 'exit', os.WEXITSTATUS(wait_status)


def truncated_checkpoints(experiment: Path) -> List[str]:
    """Checkpoint files under their final names (not the hidden temporary ones) that do not load."""
    from ddr_basicsr.training.checkpoints import unreadable_reason
    files = [path for path in [*experiment.glob('models/*.pth'), *experiment.glob('training_states/*.state')]
             if not path.name.startswith('.')]
    return [f'{path}: {reason}' for path in files if (reason := unreadable_reason(str(path))) is not None]


def final_weights_equal(first: Path, second: Path) -> bool:
    import torch
    a = torch.load(first, map_location='cpu', weights_only=True)
    b = torch.load(second, map_location='cpu', weights_only=True)
    return a.keys() == b.keys() and all(
        a[key].keys() == b[key].keys() and all(torch.equal(a[key][name], b[key][name]) for name in a[key])
        for key in a)


def run_harness(workdir: Path, kills: int, total_iter: int = 24, seed: int = 0,
                progress: Callable[[str], None] = print) -> HarnessReport:
    """The uninterrupted reference run, then the faulted job resumed after every fault; see the module docstring."""
    from ddr_basicsr.data.synthetic import write_synthetic_pairs

    workdir = Path(workdir)
    data_root = write_synthetic_pairs(workdir / 'data', {'train': 5, 'val': 1}, size=32)
    report = HarnessReport()
    paths = {}
    for name in ('uninterrupted', 'faulted'):
        paths[name] = workdir / f'{name}.yml'
        paths[name].write_text(yaml.safe_dump(tiny_job_options(data_root, name, total_iter), sort_keys=False))
    outcome = run_child(paths['uninterrupted'], workdir, False, None)
    if outcome != ('exit', 0):
        raise RuntimeError(f'the uninterrupted reference run failed: {outcome}')
    experiment = workdir / 'experiments' / 'faulted'
    faults = plan_faults(kills, total_iter, seed)
    for number, fault in enumerate([*faults, None], 1):
        outcome = run_child(paths['faulted'], workdir, number > 1, fault)
        report.runs += 1
        expected = ('exit', 0) if fault is None else (('exit', 75) if fault.kind == 'sigterm'
                                                       else ('signal', signal.SIGKILL))
        if fault is not None and outcome == ('exit', 0):
            report.events.append(f'run {number}: {fault.kind} at >= {fault.iteration} not reached (run finished)')
        elif outcome != expected:
            report.events.append(f'run {number}: {fault} ended with {outcome}, expected {expected}')
            return report
        elif fault is not None:
            report.sigterms += fault.kind == 'sigterm'
            report.kills += fault.kind != 'sigterm'
        report.truncated_files += truncated_checkpoints(experiment)
        progress(f'run {number}/{len(faults) + 1}: {fault.kind if fault else "to the end"}'
                 f"{f' at iteration >= {fault.iteration}' if fault else ''} -> {outcome[0]} {outcome[1]}")
    if outcome == ('exit', 0):
        # a planned fault that was not reached makes that run finish; later runs then resume a finished job
        report.recovered = True
        report.bitwise_equal = final_weights_equal(workdir / 'experiments' / 'uninterrupted' / 'models' /
                                                   'net_g_latest.pth', experiment / 'models' / 'net_g_latest.pth')
    return report
