"""The plugin's versions of the names BasicSR's ``train_pipeline`` looks up: ``load_resume_state`` and
``build_dataloader`` (the sampler is :class:`.resume.ResumableSampler`). :mod:`.seam` runs them for plugin runs only.

* ``load_resume_state`` maps states to the CPU without CUDA, looks for ``--auto_resume`` states in the
  experiment's own ``training_states`` folder under the root folder (BasicSR looks under the current directory),
  skips damaged newest states, naming them, and says where it looked when it finds nothing.
* ``build_dataloader`` makes the training loader resumable (samples seeded by position, see
  :mod:`ddr_basicsr.training.resume`).
"""
import os
from os import path as osp
from typing import Any, List, Optional

import torch
from basicsr.utils import check_resume

from ddr_basicsr.training import checkpoints, preemption, resume, tell


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
    import basicsr
    basicsr_default_root = osp.dirname(osp.dirname(osp.abspath(basicsr.__file__)))
    here = osp.realpath(opt['path']['experiments_root'])
    found = []
    for root in dict.fromkeys((os.getcwd(), basicsr_default_root)):
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


def _keeps_training_guarantees(opt: dict) -> bool:
    from basicsr.utils.registry import MODEL_REGISTRY

    from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
    model_type = str(opt.get('model_type'))
    return model_type in MODEL_REGISTRY and issubclass(MODEL_REGISTRY.get(model_type), TrainingGuaranteesMixin)


def load_resume_state(opt: dict) -> Optional[dict]:
    """BasicSR's ``load_resume_state`` for plugin runs: works without CUDA and skips damaged states.

    With ``--auto_resume`` the newest state in ``opt['path']['training_states']`` (under the root path) that
    loads, and whose network files load, is used; damaged newer ones are named and skipped, and leftovers of an
    interrupted checkpoint write are removed. Otherwise ``path.resume_state`` if set. Returns None when there is
    nothing to resume. It also starts catching SIGTERM / SIGINT when the model keeps the plugin's training
    guarantees (:mod:`.preemption`; other models would never act on a caught signal).
    """
    if _keeps_training_guarantees(opt):
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
    reason = checkpoints.state_problem(state_path)
    if reason is not None:
        raise RuntimeError(f"path.resume_state: training state '{state_path}' cannot be resumed: {reason}")
    resume_state = torch.load(state_path, map_location=_state_map_location(opt), weights_only=True)
    saved_by = resume_state.get('experiment')
    if saved_by is not None and saved_by != opt['name']:
        raise RuntimeError(f"training state '{state_path}' was saved by the experiment '{saved_by}', not "
                           f"'{opt['name']}'; resume it under its own name, or start a new experiment with "
                           "path.pretrain_network_g set to that run's net_g_<iter>.pth")
    check_resume(opt, resume_state['iter'])
    tell(f"resuming from {state_path} (iteration {resume_state['iter']})")
    return resume_state


def build_dataloader(dataset: Any, dataset_opt: dict, num_gpu: int = 1, dist: bool = False, sampler: Any = None,
                     seed: Optional[int] = None) -> torch.utils.data.DataLoader:
    """BasicSR's ``build_dataloader`` for plugin runs: the training loader is resumable (see
    :mod:`ddr_basicsr.training.resume`), and the workers of every loader ignore the stop signals that the main process
    handles (:mod:`ddr_basicsr.training.preemption`)."""
    from basicsr.data import build_dataloader as stock_build_dataloader
    if dataset_opt.get('phase') == 'train':
        loader = resume.build_train_dataloader(stock_build_dataloader, dataset, dataset_opt, num_gpu, dist, sampler,
                                               seed)
    else:
        loader = stock_build_dataloader(dataset, dataset_opt, num_gpu=num_gpu, dist=dist, sampler=sampler, seed=seed)
    loader.worker_init_fn = preemption.IgnoringStopSignals(loader.worker_init_fn)
    return loader
