"""What basicsr 1.4.2 gets wrong on today's stack, and ``apply()``, which installs the fixes into basicsr.

Nothing is written to basicsr's files and applying twice is harmless. ``apply()`` is called by
``ddr_basicsr.host.attach``; every route into BasicSR's pipelines gets the same behaviour: ``ddr-train`` /
``ddr-test``, ``python -m basicsr.train`` / ``python -m basicsr.test`` and ``python basicsr/train.py``.

* ``parse_options``: option files are read with a *safe* YAML loader that keeps key order (python tags are
  rejected, ``--force_yml`` values are parsed as YAML instead of ``eval``'d); every option check of
  :mod:`.options` runs before anything is written; BasicSR's own root path (the parent of the ``basicsr``
  package) is replaced by the current directory when it lies inside an installed environment, so experiments
  never land inside site-packages.
* Resuming works without CUDA (states are mapped to the CPU), ``--auto_resume`` looks in the experiment's own
  ``training_states`` folder under the root path, and says where it looked when it finds nothing.
* Networks are loaded with ``weights_only=True`` (``pretrain_network_g``, resumed ``net_g_<iter>.pth``), as
  training states already are, so no checkpoint runs code when read, whatever torch's default.
* Long runs survive preemption and faults (:mod:`.checkpoints`, :mod:`.resume`, :mod:`.preemption`,
  :mod:`.preflight`): atomic checkpoints whose failure is an error, exact resume (generator states, seeded samples,
  mid-epoch position), SIGTERM/SIGINT save and exit 75, the options' schedule wins on resume, damaged states are
  skipped, and weights and data are checked before anything is written.
* Distributed init picks NCCL when CUDA is available and gloo otherwise, binds each process to the GPU of its
  ``LOCAL_RANK``, and uses the ``fork`` start method on CPU-only machines (BasicSR forces ``spawn``, which
  re-imports torch in every data-loader worker of every epoch); ``DistributedDataParallel`` gets
  ``device_ids=None`` for CPU models.
"""
import logging
import multiprocessing
import os
import pickle
import site
import sys
import sysconfig
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, List, Optional, Tuple

import basicsr
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
import torch
import torch.distributed as dist
from basicsr import losses as basicsr_losses
from basicsr.data import build_dataloader as stock_build_dataloader
from basicsr.models.base_model import BaseModel
from basicsr.utils import check_resume, dist_util, get_root_logger, options
from basicsr.utils import logger as basicsr_logger
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ddr_basicsr.host import checkpoints, preemption, preflight, resume, tell
from ddr_basicsr.host.options import check_options, ordered_yaml, parse_force_yml_value, set_test_defaults

STOCK_PARSE_OPTIONS = options.parse_options
BASICSR_DEFAULT_ROOT = osp.dirname(osp.dirname(osp.abspath(basicsr.__file__)))
_INSTALL_FOLDER_NAMES = ('site-packages', 'dist-packages')
_told = set()


def tell_once(message: str) -> None:
    """``tell`` a message the first time it comes up in this process."""
    if message not in _told:
        _told.add(message)
        tell(message)


def installed_environment_folders() -> List[str]:
    """The folders packages are installed into (site-packages of this interpreter and of the user)."""
    folders = [sysconfig.get_paths()[key] for key in ('purelib', 'platlib')]
    folders += list(getattr(site, 'getsitepackages', lambda: [])())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [osp.realpath(folder) for folder in folders if folder]


def is_inside_installed_environment(path: str) -> bool:
    """Whether ``path`` is, or lies inside, a site-packages / dist-packages folder."""
    real = osp.realpath(path)
    if any(part in _INSTALL_FOLDER_NAMES for part in real.split(os.sep)):
        return True
    return any(real == folder or real.startswith(folder + os.sep) for folder in installed_environment_folders())


def choose_root(root_path: str) -> str:
    """``root_path``, or the current directory when ``root_path`` lies inside an installed environment."""
    if not is_inside_installed_environment(root_path):
        return root_path
    cwd = os.getcwd()
    tell_once(f"BasicSR's root folder {root_path} is inside an installed environment: experiments/, tb_logger/ and "
              f'results/ go under the current directory {cwd} instead')
    return cwd


def _patch_running_train_script() -> None:
    """Give a stock ``basicsr/train.py`` run as ``__main__`` (its own copy of the module) our training fixes."""
    main = sys.modules.get('__main__')
    if main is not None and callable(getattr(main, 'train_pipeline', None)) and hasattr(main, 'load_resume_state'):
        _patch_train_module(main)


def _patch_train_module(module: Any) -> None:
    """The names BasicSR's ``train_pipeline`` looks up in its own module that the fixes replace."""
    module.load_resume_state = load_resume_state
    module.EnlargedSampler = resume.ResumableSampler
    module.build_dataloader = build_dataloader


def _take_flag(flag: str) -> bool:
    """Remove ``flag`` from ``sys.argv`` (BasicSR's argparse does not know it); return whether it was there."""
    present = flag in sys.argv[1:]
    if present:
        sys.argv = [sys.argv[0], *(arg for arg in sys.argv[1:] if arg != flag)]
    return present


def parse_options(root_path: str, is_train: bool = True) -> Tuple[dict, Any]:
    """Drop-in for ``basicsr.utils.options.parse_options``: BasicSR's parsing, then the checks of every route.

    The safe YAML loader and ``--force_yml`` parser are installed by ``apply``; the root folder is chosen by
    ``choose_root``; ``check_options``, the weights and (training, unless ``--skip-data-check``) the data
    pre-flight run before anything is written; test runs get ``val`` defaults.
    """
    skip_data_check = _take_flag(preflight.SKIP_DATA_CHECK_FLAG)
    opt, args = STOCK_PARSE_OPTIONS(choose_root(root_path), is_train=is_train)
    check_options(opt, is_train)
    preflight.resolve_weights(opt, is_train)
    if is_train and not skip_data_check:
        preflight.check_data(opt)
    if not is_train:
        set_test_defaults(opt)
    _patch_running_train_script()
    return opt, args


def latest_training_state(folder: str) -> Optional[str]:
    """Path of the ``<iter>.state`` file with the largest iteration in ``folder`` (None if there is none)."""
    states = checkpoints.training_states(folder)
    return states[0][1] if states else None


def _state_map_location(opt: dict) -> torch.device:
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _other_roots_with_states(opt: dict) -> List[str]:
    """Experiment folders of ``opt['name']`` with training states under roots other than this run's."""
    here = osp.realpath(opt['path']['experiments_root'])
    found = []
    for root in dict.fromkeys((os.getcwd(), BASICSR_DEFAULT_ROOT)):
        folder = osp.join(root, 'experiments', opt['name'])
        if osp.realpath(folder) != here and latest_training_state(osp.join(folder, 'training_states')):
            found.append(folder)
    return found


def _report_fresh_start(opt: dict) -> None:
    """Say where ``--auto_resume`` looked, that training starts at iteration 0, and what else it saw."""
    folder = opt['path']['training_states']
    tell(f'--auto_resume: no training state in {osp.abspath(folder)}; training starts at iteration 0')
    if osp.isdir(opt['path']['experiments_root']):
        tell(f"--auto_resume: the existing folder {opt['path']['experiments_root']} has no state to resume from; "
             'BasicSR renames it to <name>_archived_<time> and starts a new one')
    for other in _other_roots_with_states(opt):
        tell(f'--auto_resume: {other} holds training states of this experiment under another root folder; to '
             f'resume it, run from {osp.dirname(osp.dirname(other))} (ddr-train: --root '
             f'{osp.dirname(osp.dirname(other))})')


def _network_labels(opt: dict) -> List[str]:
    """``g`` for ``network_g`` and so on: the ``net_<label>_<iter>.pth`` files a state is resumed with."""
    return [key[len('network_'):] for key in opt if key.startswith('network_')]


def load_resume_state(opt: dict) -> Optional[dict]:
    """Drop-in for ``basicsr.train.load_resume_state`` that works without CUDA and skips damaged states.

    With ``--auto_resume`` the newest state in ``opt['path']['training_states']`` (under the root path) that
    loads, and whose network files load, is used; damaged newer ones are named and skipped, and leftovers of an
    interrupted checkpoint write are removed. Otherwise ``path.resume_state`` if set. Returns None when there is
    nothing to resume. Installs the SIGTERM/SIGINT handlers of :mod:`.preemption`.
    """
    preemption.install_stop_handlers()
    if opt['auto_resume']:
        states_folder, models_folder = opt['path']['training_states'], opt['path']['models']
        for folder in (states_folder, models_folder):
            for name in checkpoints.remove_unfinished_files(folder):
                tell(f'--auto_resume: removed {osp.join(folder, name)}, an unfinished checkpoint of an interrupted run')
        state_path = checkpoints.newest_readable_state(states_folder, models_folder, _network_labels(opt), tell)
        if state_path is None:
            if checkpoints.training_states(states_folder):
                raise RuntimeError(f'--auto_resume: no training state in {osp.abspath(states_folder)} can be read '
                                   '(see the messages above); restore one from a backup, or move the folder away '
                                   'to start again at iteration 0')
            _report_fresh_start(opt)
            return None
        opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
    if state_path is None:
        return None
    if not osp.isfile(state_path):
        raise FileNotFoundError(f"path.resume_state: training state '{state_path}' does not exist "
                                f'(relative paths are resolved against the current directory {os.getcwd()})')
    reason = checkpoints.unreadable_reason(state_path)
    if reason is not None:
        raise RuntimeError(f"path.resume_state: training state '{state_path}' cannot be read: {reason}")
    resume_state = torch.load(state_path, map_location=_state_map_location(opt), weights_only=True)
    check_resume(opt, resume_state['iter'])
    tell(f"resuming from {state_path} (iteration {resume_state['iter']})")
    return resume_state


def load_network(self: BaseModel, net: nn.Module, load_path: str, strict: bool = True,
                 param_key: Optional[str] = 'params') -> None:
    """Drop-in for ``BaseModel.load_network`` that reads the file with ``weights_only=True``.

    BasicSR's own call leaves ``weights_only`` to torch's default, which torch < 2.6 (and
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) sets to False, so a ``.pth`` could run code when unpickled. A
    missing file or one that holds Python objects gives an error naming the file. Otherwise it behaves
    as BasicSR: ``params`` stands in for a missing ``params_ema``, and a ``module.`` prefix is dropped.
    """
    if not osp.isfile(load_path):
        raise FileNotFoundError(f"network file '{load_path}' does not exist (path.pretrain_network_g, or the "
                                'net_g_<iter>.pth of the state being resumed)')
    try:
        checkpoint = torch.load(load_path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"'{load_path}' is not a plain state dict: it holds Python objects, which ddr-basicsr does "
                         'not unpickle because that could run code. Re-save the weights with '
                         f"torch.save({{'params': net.state_dict()}}, path). ({error})") from error
    if param_key is not None:
        if param_key not in checkpoint and 'params' in checkpoint:
            param_key = 'params'
            get_root_logger().info('Loading: params_ema does not exist, use params.')
        checkpoint = checkpoint[param_key]
    net = self.get_bare_model(net)
    get_root_logger().info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    state_dict = OrderedDict((key[len('module.'):] if key.startswith('module.') else key, value)
                             for key, value in checkpoint.items())
    self._print_different_keys_loading(net, state_dict, strict)
    try:
        net.load_state_dict(state_dict, strict=strict)
    except RuntimeError as error:
        raise ValueError(f"'{load_path}' does not fit the network built from the options "
                         f"({net.__class__.__name__}): {str(error).splitlines()[0]} ... When resuming, network_g "
                         'must stay as it was when the run started.') from error


def save_network(self: BaseModel, net: Any, net_label: str, current_iter: int, param_key: Any = 'params') -> None:
    """Drop-in for ``BaseModel.save_network``: atomic, durable, finite weights only, and a failure is an error."""
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


def save_training_state(self: BaseModel, epoch: int, current_iter: int) -> None:
    """Drop-in for ``BaseModel.save_training_state``: also the random generators of every rank and the data
    geometry (for exact resume); written atomically by rank 0; a failure is an error."""
    if current_iter == -1:
        return
    rng_states = resume.gather_rng_states()
    if self.opt.get('rank', 0) != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers], 'rng_states': rng_states,
             'data_geometry': resume.TRAINING.data_geometry()}
    checkpoints.write_checkpoint(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


SCHEDULER_PROGRESS_KEYS = ('last_epoch', '_step_count', '_last_lr', '_get_lr_called_within_step', '_is_initial')
OPTIMIZER_PROGRESS_KEYS = ('params', 'lr')


def _differences(saved: Dict[str, Any], from_options: Dict[str, Any], progress_keys: Tuple[str, ...]) -> Dict:
    return {key: (saved.get(key), value) for key, value in from_options.items()
            if key not in progress_keys and key in saved and str(saved[key]) != str(value)}


def resume_training(self: BaseModel, resume_state: dict) -> None:
    """Drop-in for ``BaseModel.resume_training``: the options' schedule wins, exact progress is restored.

    Optimizer and scheduler states are loaded, then the hyper-parameters the option file sets (scheduler
    ``periods``, ``milestones``, ``T_max``, base learning rates, optimizer ``betas``, ``weight_decay``, ...) are
    taken from the options, continued at the saved iteration, with one log line per change. The random
    generators and the sampler position are restored by :func:`.resume.restore_progress`.
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


STOCK_UPDATE_LEARNING_RATE = BaseModel.update_learning_rate
STOCK_VALIDATION = BaseModel.validation


def update_learning_rate(self: BaseModel, current_iter: int, warmup_iter: int = -1) -> None:
    """BasicSR calls this first in every iteration: a pending stop signal saves iteration ``current_iter - 1``."""
    if preemption.stop_requested():
        preemption.save_and_stop(self, current_iter - 1)
    STOCK_UPDATE_LEARNING_RATE(self, current_iter, warmup_iter)


def validation(self: BaseModel, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool = False) -> None:
    """BasicSR's validation, with the random generators put back afterwards (it must not change training)."""
    with resume.rng_states_kept():
        STOCK_VALIDATION(self, dataloader, current_iter, tb_logger, save_img)


STOCK_BUILD_LOSS = basicsr_losses.build_loss


def build_loss(opt: dict) -> nn.Module:
    """Drop-in for ``basicsr.losses.build_loss``: the loss the pre-flight already built for this block, so its
    weights (CLIP, VGG) are loaded once; otherwise BasicSR's."""
    loss = preflight.take_prebuilt_loss(opt)
    if loss is None:
        return STOCK_BUILD_LOSS(opt)
    get_root_logger().info(f'Loss [{loss.__class__.__name__}] is created.')
    return loss


def route_build_loss() -> None:
    """Point every loaded module that imported BasicSR's ``build_loss`` (its models, ours) at :func:`build_loss`."""
    for module in list(sys.modules.values()):
        if getattr(module, 'build_loss', None) is STOCK_BUILD_LOSS:
            module.build_loss = build_loss


def build_dataloader(dataset: Any, dataset_opt: dict, num_gpu: int = 1, dist: bool = False, sampler: Any = None,
                     seed: Optional[int] = None) -> torch.utils.data.DataLoader:
    """Drop-in for ``basicsr.data.build_dataloader``: the training loader is resumable (see :mod:`.resume`)."""
    if dataset_opt.get('phase') == 'train':
        return resume.build_train_dataloader(stock_build_dataloader, dataset, dataset_opt, num_gpu, dist, sampler,
                                             seed)
    return stock_build_dataloader(dataset, dataset_opt, num_gpu=num_gpu, dist=dist, sampler=sampler, seed=seed)


def resolve_dist_backend(requested: str = 'nccl') -> str:
    """NCCL needs CUDA: fall back to gloo when CUDA is unavailable."""
    if requested == 'nccl' and not torch.cuda.is_available():
        return 'gloo'
    return requested


def _init_dist_pytorch(backend: str, **kwargs: Any) -> None:
    backend = resolve_dist_backend(backend)
    if backend == 'nccl':
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, **kwargs)


def init_dist(launcher: str, backend: str = 'nccl', **kwargs: Any) -> None:
    """Drop-in for ``basicsr.utils.dist_util.init_dist``: gloo on CPU, the GPU of ``LOCAL_RANK`` on CUDA."""
    if multiprocessing.get_start_method(allow_none=True) is None:
        cpu_only = not torch.cuda.is_available()
        use_fork = cpu_only and 'fork' in multiprocessing.get_all_start_methods()
        multiprocessing.set_start_method('fork' if use_fork else 'spawn')
    if launcher == 'pytorch':
        _init_dist_pytorch(backend, **kwargs)
    elif launcher == 'slurm':
        if not torch.cuda.is_available():
            raise ValueError('--launcher slurm needs CUDA GPUs; on CPU use torchrun with --launcher pytorch')
        dist_util._init_dist_slurm(backend, **kwargs)
    else:
        raise ValueError(f"invalid launcher '{launcher}': use none, pytorch or slurm")


def model_to_device(self: BaseModel, net: nn.Module) -> nn.Module:
    """Drop-in for ``BaseModel.model_to_device``: DDP with ``device_ids=None`` for CPU models."""
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        return DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    if self.opt['num_gpu'] > 1:
        return DataParallel(net)
    return net


def reset_root_logger(name: str = 'basicsr') -> None:
    """Forget BasicSR's logger set-up so that the next run in this process opens its own log file."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    basicsr_logger.initialized_logger.pop(name, None)


def apply() -> None:
    """Install all fixes into the imported basicsr modules (idempotent)."""
    options.ordered_yaml = ordered_yaml
    options._postprocess_yml_value = parse_force_yml_value
    options.init_dist = init_dist
    dist_util.init_dist = init_dist
    options.parse_options = parse_options
    basicsr_train.parse_options = parse_options
    basicsr_test.parse_options = parse_options
    _patch_train_module(basicsr_train)
    BaseModel.model_to_device = model_to_device
    BaseModel.load_network = load_network
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    BaseModel.resume_training = resume_training
    BaseModel.update_learning_rate = update_learning_rate
    BaseModel.validation = validation
