"""``TrainingGuaranteesMixin``: what the plugin's models promise on every route into BasicSR's training loop.

The plugin's models inherit it before their BasicSR base (``class RestorationModel(TrainingGuaranteesMixin,
SRModel)``), as Real-ESRGAN and GFPGAN subclass BasicSR's models; BasicSR's loop calls these methods, so the
guarantees hold on ``ddr-train`` and on BasicSR's own entry points alike, and BasicSR's ``BaseModel`` is untouched:

* networks load with ``weights_only=True``, and a missing, pickled or ill-fitting file is an error naming it;
* checkpoints are written atomically and durably, never with NaN/Inf weights, and a failed write is an error;
* training states also hold every rank's random generators and the data geometry (exact resume), and on resume
  the option file's scheduler and optimizer settings win, each change logged;
* SIGTERM / SIGINT save a complete state of the last finished iteration and exit with status 75 (the training
  loop of plugin runs catches them for models with this mixin);
* validation leaves the training's random generators as they were;
* DDP of a CPU model gets ``device_ids=None``.
"""
import pickle
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, Optional, Tuple

import torch
from basicsr.utils import get_root_logger
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ddr_basicsr.training import checkpoints, preemption, resume

SCHEDULER_PROGRESS_KEYS = ('last_epoch', '_step_count', '_last_lr', '_get_lr_called_within_step', '_is_initial')
OPTIMIZER_PROGRESS_KEYS = ('params', 'lr')


def _differences(saved: Dict[str, Any], from_options: Dict[str, Any], progress_keys: Tuple[str, ...]) -> Dict:
    return {key: (saved.get(key), value) for key, value in from_options.items()
            if key not in progress_keys and key in saved and str(saved[key]) != str(value)}


class TrainingGuaranteesMixin:
    """Put before a BasicSR model class in the bases of the plugin's models (module docstring)."""

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """BasicSR's, with ``device_ids=None`` for DDP of CPU models."""
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True,
                     param_key: Optional[str] = 'params') -> None:
        """BasicSR's, reading the file with ``weights_only=True`` (torch < 2.6 and
        ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` would unpickle code); errors name the file. As BasicSR, ``params``
        stands in for a missing ``params_ema`` and a ``module.`` prefix is dropped."""
        if not osp.isfile(load_path):
            raise FileNotFoundError(f"network file '{load_path}' does not exist (path.pretrain_network_g, or the "
                                    'net_g_<iter>.pth of the state being resumed)')
        try:
            checkpoint = torch.load(load_path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(f"'{load_path}' is not a plain state dict: it holds Python objects, which ddr-basicsr "
                             'does not unpickle because that could run code. Re-save the weights with '
                             f"torch.save({{'params': net.state_dict()}}, path). ({error})") from error
        if param_key is not None:
            if param_key not in checkpoint and 'params' in checkpoint:
                param_key = 'params'
                get_root_logger().info('Loading: params_ema does not exist, use params.')
            checkpoint = checkpoint[param_key]
        net = self.get_bare_model(net)
        get_root_logger().info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: '
                               f'[{param_key}].')
        state_dict = OrderedDict((key[len('module.'):] if key.startswith('module.') else key, value)
                                 for key, value in checkpoint.items())
        self._print_different_keys_loading(net, state_dict, strict)
        try:
            net.load_state_dict(state_dict, strict=strict)
        except RuntimeError as error:
            raise ValueError(f"'{load_path}' does not fit the network built from the options "
                             f"({net.__class__.__name__}): {str(error).splitlines()[0]} ... When resuming, network_g "
                             'must stay as it was when the run started.') from error

    def save_network(self, net: Any, net_label: str, current_iter: int, param_key: Any = 'params') -> None:
        """BasicSR's, written atomically and durably, finite weights only; a failure is an error."""
        if self.opt.get('rank', 0) != 0:
            return
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        suffix = 'latest' if current_iter == -1 else current_iter
        save_path = osp.join(self.opt['path']['models'], f'{net_label}_{suffix}.pth')
        save_dict = {}
        for one_net, key in zip(nets, keys):
            state_dict = OrderedDict((name[len('module.'):] if name.startswith('module.') else name, value.cpu())
                                     for name, value in self.get_bare_model(one_net).state_dict().items())
            checkpoints.check_finite_state_dict(state_dict, f'{save_path} [{key}]')
            save_dict[key] = state_dict
        checkpoints.write_checkpoint(save_dict, save_path)

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's, with the random generators of every rank, the data geometry and the experiment name;
        written atomically by rank 0; a failure is an error."""
        if current_iter == -1:
            return
        rng_states = resume.gather_rng_states()
        if self.opt.get('rank', 0) != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'experiment': self.opt.get('name'),
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'rng_states': rng_states,
                 'data_geometry': resume.TRAINING.data_geometry()}
        checkpoints.write_checkpoint(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict) -> None:
        """BasicSR's, with the options' schedule winning and exact progress restored.

        Optimizer and scheduler states are loaded, then the hyper-parameters the option file sets (scheduler
        ``periods``, ``milestones``, ``T_max``, base learning rates, optimizer ``betas``, ``weight_decay``, ...) are
        taken from the options, continued at the saved iteration, with one log line per change. The random
        generators and the sampler position are restored by :func:`ddr_basicsr.training.resume.restore_progress`.
        """
        state_path = self.opt['path'].get('resume_state') or 'the training state'
        for kind, saved, current in (('optimizers', resume_state['optimizers'], self.optimizers),
                                     ('schedulers', resume_state['schedulers'], self.schedulers)):
            if len(saved) != len(current):
                raise resume.ResumeMismatchError(f'{state_path} holds {len(saved)} {kind}, the options make '
                                                 f'{len(current)}; resume with the option file it was saved with')
        logger = get_root_logger()
        fresh_groups = [[{k: v for k, v in group.items() if k != 'params'} for group in o.param_groups]
                        for o in self.optimizers]
        fresh_schedulers = [s.state_dict() for s in self.schedulers]
        for optimizer, saved, groups in zip(self.optimizers, resume_state['optimizers'], fresh_groups):
            optimizer.load_state_dict(saved)
            for index, (group, from_options) in enumerate(zip(optimizer.param_groups, groups)):
                for key, (old, new) in _differences(group, from_options, OPTIMIZER_PROGRESS_KEYS).items():
                    logger.info(f'resume: optimizer param group {index}: {key} {old} -> {new} (from the options)')
                    group[key] = new
        for scheduler, saved, from_options in zip(self.schedulers, resume_state['schedulers'], fresh_schedulers):
            changes = _differences(saved, from_options, SCHEDULER_PROGRESS_KEYS)
            for key, (old, new) in changes.items():
                logger.info(f'resume: {type(scheduler).__name__}.{key} {old} -> {new} (from the options)')
            scheduler.load_state_dict({**saved, **{key: from_options[key] for key in changes}})
        resume.restore_progress(resume_state, self.opt.get('rank', 0), state_path)

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """BasicSR's loop calls this first in every iteration: a pending stop signal saves iteration
        ``current_iter - 1`` and exits (status 75)."""
        if preemption.stop_requested():
            preemption.save_and_stop(self, current_iter - 1)
        super().update_learning_rate(current_iter, warmup_iter)

    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool = False) -> None:
        """BasicSR's validation, with the random generators put back afterwards (it must not change training)."""
        with resume.rng_states_kept():
            super().validation(dataloader, current_iter, tb_logger, save_img)
