"""``parse_options`` for plugin runs, and the switch that decides whether a run is one.

:func:`route_options` stands in for BasicSR's ``parse_options`` (see :mod:`.seam`). It reads the option file
and the ``--force_yml`` entries without running anything, and when the result names a model, network, loss,
dataset or metric that ddr-basicsr registered (or ``ddr-train`` / ``ddr-test`` started the run) it parses the
options itself with :func:`parse_plugin_options`; any other run gets BasicSR's own ``parse_options``, unchanged.

For plugin runs, before anything is written or renamed:

* the option file is read with a safe YAML loader (python tags are refused) and ``--force_yml section:key=value``
  entries are applied as YAML values along their key path, never through ``exec`` or ``eval``;
* the random seed is set, then the option checks of :mod:`.options` and the pre-flight of :mod:`.preflight` run
  with every random generator put back afterwards, so the initial network does not depend on the loss blocks,
  validation metrics or data check (fair starts);
* BasicSR's root folder, when it lies inside an installed environment (``python -m basicsr.train``), is replaced
  by the current directory for ``experiments/``, ``tb_logger/`` and ``results/``;
* ``--launcher pytorch`` picks gloo without CUDA, and ``--local-rank`` (torch.distributed.launch) is accepted.
"""
import argparse
import os
import random
import site
import sys
import sysconfig
from collections import OrderedDict
from os import path as osp
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, Tuple

import yaml

from ddr_basicsr.host import preflight, seam
from ddr_basicsr.host.options import (
    OrderedSafeLoader,
    check_options,
    load_yaml,
    parse_force_yml_value,
    set_test_defaults,
)
from ddr_basicsr.training import tell
from ddr_basicsr.utils.atomic_files import try_lock

PLUGIN_PACKAGE = 'ddr_basicsr'
_INSTALL_FOLDER_NAMES = ('site-packages', 'dist-packages')
_told = set()


def tell_once(message: str) -> None:
    """``tell`` a message the first time it comes up in this process."""
    if message not in _told:
        _told.add(message)
        tell(message)


def argument_parser() -> argparse.ArgumentParser:
    """BasicSR's command line, plus ``--local-rank`` (torch.distributed.launch) and ``--skip-data-check``."""
    parser = argparse.ArgumentParser()
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Force to update yml files. Examples: train:ema_decay=0.999')
    parser.add_argument(preflight.SKIP_DATA_CHECK_FLAG, action='store_true',
                        help='do not open every training/validation image before training starts')
    return parser


class _PeekSafeLoader(OrderedSafeLoader):
    """Reads an option file only to see the names it uses: python tags become None instead of running."""


_PeekSafeLoader.add_multi_constructor('tag:yaml.org,2002:python/', lambda loader, suffix, node: None)


def force_yml(opt: dict, entries: Sequence[str]) -> None:
    """Apply ``--force_yml section:key=value`` entries: the value is read as YAML and set along the key path.

    Every section on the path must exist (the last key may be new); a ValueError names the entry otherwise.
    """
    for entry in entries:
        keys, separator, value = entry.partition('=')
        if not separator or not keys.strip():
            raise ValueError(f"--force_yml {entry!r}: write section:key=value, e.g. train:ema_decay=0.999")
        path = [key.strip() for key in keys.split(':')]
        section = opt
        for depth, key in enumerate(path[:-1]):
            section = section.get(key) if isinstance(section, Mapping) else None
            if not isinstance(section, Mapping):
                raise ValueError(f"--force_yml {entry!r}: {':'.join(path[:depth + 1])} is not a section of the "
                                 'option file (only the last key of the path may be new)')
        section[path[-1]] = parse_force_yml_value(value.strip())


def plugin_names() -> set:
    """Names that ddr-basicsr registered in BasicSR's registries."""
    from basicsr.utils import registry
    names = set()
    for table in (registry.ARCH_REGISTRY, registry.LOSS_REGISTRY, registry.MODEL_REGISTRY,
                  registry.METRIC_REGISTRY, registry.DATASET_REGISTRY):
        names.update(name for name, obj in table if getattr(obj, '__module__', '').startswith(PLUGIN_PACKAGE))
    return names


def named_types(opt: Mapping) -> Iterator[str]:
    """Every registry name an option file uses: model, networks, datasets, loss blocks, validation metrics."""
    yield str(opt.get('model_type'))
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, Mapping):
            yield str(value.get('type'))
    sections = [(opt.get('datasets') or {}), (opt.get('train') or {}), ((opt.get('val') or {}).get('metrics') or {})]
    for section in sections:
        if isinstance(section, Mapping):
            for value in section.values():
                if isinstance(value, Mapping):
                    yield str(value.get('type'))


def uses_plugin(opt: Any) -> bool:
    """Whether an option mapping names anything ddr-basicsr registered."""
    return isinstance(opt, Mapping) and not plugin_names().isdisjoint(named_types(opt))


def peek_options(argv: Sequence[str]) -> Optional[dict]:
    """The option file of ``argv`` with its ``--force_yml`` entries, read without running anything (None when
    it cannot be read: BasicSR's own parser then reports the problem as it always did)."""
    try:
        args, _ = argument_parser().parse_known_args(list(argv))
        with open(args.opt, encoding='utf-8') as stream:
            opt = yaml.load(stream, Loader=_PeekSafeLoader)
        force_yml(opt, args.force_yml or [])
    except (SystemExit, Exception):  # any problem here is reported by whichever parser runs next
        return None
    return opt


def route_options(stock: Callable, root_path: str, is_train: bool = True) -> Tuple[dict, Any]:
    """BasicSR's ``parse_options`` for other runs, :func:`parse_plugin_options` for plugin runs."""
    seam.RUN.plugin_run = seam.RUN.forced or uses_plugin(peek_options(sys.argv[1:]))
    if not seam.RUN.plugin_run:
        return stock(root_path, is_train=is_train)
    return parse_plugin_options(root_path, is_train)


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


class PluginOptions(OrderedDict):
    """The options of a plugin run. ``root_path`` keeps the folder chosen by :func:`choose_root`: BasicSR's
    ``train_pipeline`` sets it again, to the folder it was called with, after parsing."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key == 'root_path' and key in self:
            return
        super().__setitem__(key, value)


def _read_option_file(path: str) -> dict:
    try:
        opt = load_yaml(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"-opt {path}: the option file does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f'-opt {path}: the option file is not UTF-8 text ({error})') from None
    if not isinstance(opt, Mapping):
        raise ValueError(f'-opt {path}: an option file is a YAML mapping (name: ..., model_type: ...), this one '
                         f'holds {type(opt).__name__ if opt is not None else "nothing"}')
    return opt


def _expand_dataset_and_path_options(opt: dict) -> None:
    """Dataset phases and scale, and ``~`` in data, resume and pretrained paths (as BasicSR)."""
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])
    for key, value in opt['path'].items():
        if value is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = osp.expanduser(value)


def _set_folders(opt: dict, root: str, is_train: bool) -> None:
    """The experiment (training) or results (test) folders under ``root``, and BasicSR's debug settings."""
    if is_train:
        experiments_root = osp.join(root, 'experiments', opt['name'])
        opt['path'].update(experiments_root=experiments_root, models=osp.join(experiments_root, 'models'),
                           training_states=osp.join(experiments_root, 'training_states'), log=experiments_root,
                           visualization=osp.join(experiments_root, 'visualization'))
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = osp.join(root, 'results', opt['name'])
        opt['path'].update(results_root=results_root, log=results_root,
                           visualization=osp.join(results_root, 'visualization'))


def parse_plugin_options(root_path: str, is_train: bool = True,
                         argv: Optional[Sequence[str]] = None) -> Tuple[dict, argparse.Namespace]:
    """BasicSR's ``parse_options`` for a plugin run (module docstring): same options, same folders."""
    import torch
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info

    from ddr_basicsr.training.distributed import init_dist
    from ddr_basicsr.training.resume import rng_states_kept
    args = argument_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    opt = _read_option_file(args.opt)
    force_yml(opt, args.force_yml or [])
    opt.setdefault('path', OrderedDict())
    opt.setdefault('datasets', OrderedDict())
    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
        init_dist(args.launcher, **((opt.get('dist_params') or {}) if args.launcher == 'slurm' else {}))
    else:
        print('Disable distributed.', flush=True)
    opt['rank'], opt['world_size'] = get_dist_info()
    if opt.get('manual_seed') is None:
        opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(opt['manual_seed'] + opt['rank'])
    opt['auto_resume'], opt['is_train'] = args.auto_resume, is_train
    if args.debug and not str(opt.get('name', '')).startswith('debug'):
        opt['name'] = f"debug_{opt.get('name')}"
    if opt.get('num_gpu') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    _expand_dataset_and_path_options(opt)
    check_options(opt, is_train)
    root = choose_root(root_path)
    _set_folders(opt, root, is_train)
    with rng_states_kept():
        preflight.check_network_files(opt, is_train)
        preflight.resolve_weights(opt, is_train)
        if is_train and not args.skip_data_check:
            preflight.check_data(opt)
    if not is_train:
        set_test_defaults(opt)
    elif opt['rank'] == 0:
        lock_experiment(root, opt['name'])
    _set_loop_entries_of_running_train_script()
    return PluginOptions([*opt.items(), ('root_path', root)]), args


_experiment_lock: List[Any] = []


def release_experiment_lock() -> None:
    """Let go of the experiment lock of this process (``ddr-train`` does when its run returns)."""
    while _experiment_lock:
        _experiment_lock.pop().close()


def lock_experiment(root: str, name: str) -> None:
    """One training process per experiment at a time: ``experiments/.<name>.lock`` is held until the run ends (the
    process ends, killed too, or ``ddr-train`` returns). A second run of the same experiment is refused before it
    archives or overwrites anything of the first."""
    release_experiment_lock()
    folder = osp.join(root, 'experiments')
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'.{name}.lock')
    handle, taken = try_lock(path)
    if not taken:
        handle.close()
        raise RuntimeError(f"experiment '{name}' is being trained by another process now ({path} is locked): wait "
                           'for it to end (then --auto_resume continues it), or give this run another name')
    _experiment_lock.append(handle)


def _set_loop_entries_of_running_train_script() -> None:
    """A copy of BasicSR's ``train.py`` run as ``__main__`` looks up its own names: give it the loop switches."""
    main = sys.modules.get('__main__')
    if main is not None and callable(getattr(main, 'train_pipeline', None)) and hasattr(main, 'load_resume_state'):
        seam.install_loop_entries(main)
