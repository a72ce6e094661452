"""Option files: a safe ordered YAML loader, and the checks every training or test route runs before
anything is written.

Checks (``check_options``): the experiment name is a plain folder name; model, network, loss and validation
metric types are registered, and every key of ``network_g`` and of each loss block is an argument of its class
(``loss_wieght`` is an error with a close match); in training every loss block is one the model reads
(``model_type: SRModel`` with a ``ddr_opt`` block is an error that says to use RestorationModel, never a silent
no-op) and a ``train`` key that looks like a misspelt block or setting (``ddr_opts``) is an error; dataset folders
exist (relative ``dataroot_*`` paths become absolute against the current directory); ``num_gpu`` and
``prefetch_mode: cuda`` match the machine.
"""
import os
from collections import OrderedDict
from os import path as osp
from typing import Any, Mapping, Optional, Tuple

import yaml

from ddr_basicsr.training.loss_blocks import loss_block_keys, loss_keys_read_by
from ddr_basicsr.training.option_checks import check_keyword_options, did_you_mean

_PYTHON_TAG_PREFIX = 'tag:yaml.org,2002:python/'


class OrderedSafeLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """Safe YAML loader that returns mappings as ``OrderedDict`` (BasicSR keeps key order)."""


class OrderedSafeDumper(getattr(yaml, 'CSafeDumper', yaml.SafeDumper)):
    """Safe YAML dumper that writes ``OrderedDict`` as a plain mapping."""


def _construct_ordered_mapping(loader: OrderedSafeLoader, node: yaml.MappingNode) -> OrderedDict:
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


def _reject_python_tag(loader: OrderedSafeLoader, tag_suffix: str, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML tag '!!python/{tag_suffix}' is not allowed in option files: it would create Python "
        'objects or run code. ddr-basicsr reads option files with a safe loader; remove the tag (numbers in '
        "exponent form are written '!!float 1e-4')", node.start_mark)


OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
OrderedSafeLoader.add_multi_constructor(_PYTHON_TAG_PREFIX, _reject_python_tag)
OrderedSafeDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def ordered_yaml() -> Tuple[type, type]:
    """Drop-in for ``basicsr.utils.options.ordered_yaml``: the safe loader and dumper above."""
    return OrderedSafeLoader, OrderedSafeDumper


def load_yaml(path: str) -> OrderedDict:
    """Read an option file with the safe ordered loader."""
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=OrderedSafeLoader)


def parse_force_yml_value(value: str) -> Any:
    """Parse one ``--force_yml key=value`` value like a YAML value (``none`` also means null).

    Replaces BasicSR's parser, which ``eval``s list values.
    """
    if value.strip().lower() == 'none':
        return None
    try:
        return yaml.load(value, Loader=OrderedSafeLoader)
    except yaml.YAMLError as error:
        raise ValueError(f'--force_yml: cannot parse the value {value!r} as YAML: {error}') from error


#: ``train`` keys read by BasicSR's models and RestorationModel besides the ``*_opt`` loss blocks.
TRAIN_KEYS = ('ema_decay', 'optim_g', 'optim_d', 'scheduler', 'total_iter', 'warmup_iter', 'net_d_iters',
              'net_d_init_iters', 'use_grad_clip', 'grad_clip_norm', 'mixed_precision', 'progressive',
              'max_nonfinite_skips', 'non_blocking_copy', 'deferred_loss_log', 'channels_last', 'compile')


def _registered(registry, name: str) -> bool:
    return name in registry or f'{name}_basicsr' in registry


def _lookup(registry, name: str) -> Any:
    return registry.get(name if name in registry else f'{name}_basicsr')


def check_train_keys(train_opt: Mapping) -> None:
    """A ``train`` key that is neither a loss block (``*_opt``) nor a known setting, yet looks like one
    (``ddr_opts``, ``pixel_op``, ``total_iters``), is a typo that would silently do nothing."""
    for key in train_opt:
        if key.endswith('_opt') or key in TRAIN_KEYS:
            continue
        blocks = [name for name in train_opt if name.endswith('_opt')]
        guess = did_you_mean(key, list(TRAIN_KEYS) + blocks)
        if key.endswith(('_opts', '_op', '_options')) or guess:
            suggestion = guess or f" (a loss block's key ends in '_opt', e.g. '{key.rsplit('_', 1)[0]}_opt')"
            raise ValueError(f'train.{key} is not read by any model{suggestion}; it would be ignored')


def check_validation_metrics(opt: Mapping) -> None:
    """Every ``val.metrics.<name>.type`` is a registered metric (else it fails at the first validation)."""
    from basicsr.utils.registry import METRIC_REGISTRY
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        metric_type = (metric or {}).get('type') if isinstance(metric, Mapping) else None
        if not _registered(METRIC_REGISTRY, str(metric_type)):
            registered = sorted(entry for entry, _ in METRIC_REGISTRY)
            raise ValueError(f"val.metrics.{name}: unknown metric type '{metric_type}'"
                             f"{did_you_mean(str(metric_type), registered)}; registered metrics: "
                             f"{', '.join(registered)}")


def model_for_extra_blocks(model_cls: type) -> Optional[str]:
    """The ``model_type`` that trains ``model_cls``'s way with extra loss blocks (None when the plugin has none)."""
    from basicsr.utils.registry import MODEL_REGISTRY
    if model_cls.__module__.startswith('ddr_basicsr.'):
        return model_cls.__name__
    if model_cls.__name__ == 'SRModel':
        return 'RestorationModel'
    variant = f'DDR{model_cls.__name__}'
    return variant if variant in MODEL_REGISTRY else None


#: How BasicSR's models call the loss of a slot; a plugin loss in a slot whose convention it does not follow is
#: refused before anything is written.
SLOT_CONVENTIONS = {
    'perceptual_opt': 'l_percep, l_style = loss(output, gt), a (perceptual, style) pair',
    'gan_opt': 'loss(discriminator_output, target_is_real, is_disc), a GAN loss',
    'feature_matching_opt': 'loss(fake_features, real_features) over discriminator features',
}


def check_slot_conventions(model_type: str, train_opt: Mapping, advised_model: Optional[str]) -> None:
    """A loss of the plugin in a slot of a BasicSR model that calls it another way is an error naming the slot and
    what to write instead (every plugin loss is called ``loss(output, gt)`` and returns one value)."""
    from basicsr.utils.registry import LOSS_REGISTRY
    for key, convention in SLOT_CONVENTIONS.items():
        block = train_opt.get(key)
        if not isinstance(block, Mapping) or not _registered(LOSS_REGISTRY, str(block.get('type'))):
            continue
        loss_cls = _lookup(LOSS_REGISTRY, str(block['type']))
        if loss_cls.__module__.startswith('ddr_basicsr.'):
            name = loss_cls.__name__.lower().replace('loss', '') or 'extra'
            raise ValueError(f"train.{key}: {model_type} calls this slot as {convention}; {loss_cls.__name__} returns "
                             f'one value of loss(output, gt). Give it a block of its own instead, e.g. '
                             f"'{name}_opt: {{type: {loss_cls.__name__}, loss_weight: ...}}'"
                             f"{f', under model_type: {advised_model}' if advised_model else ''}")


def check_training_reductions(train_opt: Mapping) -> None:
    """``reduction: none`` gives one value per image, which training cannot step on."""
    for key in loss_block_keys(train_opt):
        block = train_opt[key]
        if isinstance(block, Mapping) and block.get('reduction') == 'none':
            raise ValueError(f"train.{key}.reduction is 'none' (one value per image); training needs one number: "
                             "use 'mean' or 'sum'")


def check_logger_options(opt: Mapping) -> None:
    """``logger.wandb.project`` needs wandb installed and ``use_tb_logger: true`` (BasicSR asserts it after the
    experiment folder exists)."""
    logger_opt = opt.get('logger') or {}
    wandb_opt = logger_opt.get('wandb') or {}
    if not opt.get('is_train', True) or wandb_opt.get('project') is None or 'debug' in str(opt.get('name')):
        return
    if logger_opt.get('use_tb_logger') is not True:
        raise ValueError('logger.wandb.project is set but logger.use_tb_logger is not true; BasicSR logs to wandb '
                         'through TensorBoard: set use_tb_logger: true, or remove logger.wandb')
    import importlib.util
    if importlib.util.find_spec('wandb') is None:
        raise ModuleNotFoundError('logger.wandb.project is set but wandb is not installed: pip install wandb, or '
                                  'remove logger.wandb')


def check_model_options(opt: dict, is_train: bool) -> None:
    """Model and network types are registered; in training every loss block is one the model reads and builds."""
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    from ddr_basicsr.models.restoration_model import RestorationModel, check_loss_block
    model_type, network_type = opt.get('model_type'), (opt.get('network_g') or {}).get('type')
    if not _registered(MODEL_REGISTRY, str(model_type)):
        raise ValueError(f"unknown model_type '{model_type}'; registered models: "
                         f"{', '.join(sorted(name for name, _ in MODEL_REGISTRY))}")
    if not _registered(ARCH_REGISTRY, str(network_type)):
        raise ValueError(f"unknown network_g.type '{network_type}'; registered networks: "
                         f"{', '.join(sorted(name for name, _ in ARCH_REGISTRY))}")
    check_keyword_options('network_g', _lookup(ARCH_REGISTRY, str(network_type)), opt['network_g'])
    if not is_train:
        return
    train_opt = opt.get('train') or {}
    check_training_reductions(train_opt)
    model_cls = _lookup(MODEL_REGISTRY, str(model_type))
    if issubclass(model_cls, RestorationModel):
        check_train_keys(train_opt)
        for key in loss_block_keys(train_opt):
            check_loss_block(key, train_opt[key])
            check_keyword_options(f'train.{key}', _lookup(LOSS_REGISTRY, train_opt[key]['type']), train_opt[key])
        return
    read_keys = loss_keys_read_by(model_cls)
    if read_keys is None:
        return
    advised = model_for_extra_blocks(model_cls)
    check_slot_conventions(str(model_type), train_opt, advised)
    check_train_keys(train_opt)
    ignored = [key for key in loss_block_keys(train_opt) if key not in read_keys]
    if ignored and not model_cls.__module__.startswith('ddr_basicsr.'):
        blocks = ', '.join(f'train.{key}' for key in ignored)
        fix = (f'set model_type: {advised} to train with them' if advised else
               'no model of ddr-basicsr adds loss blocks to it; remove them')
        raise ValueError(f"model_type {model_type} ignores the loss block(s) {blocks} "
                         f"(it reads only {', '.join(read_keys)}); {fix}")
    for key in loss_block_keys(train_opt):
        block = train_opt[key]
        if isinstance(block, Mapping) and _registered(LOSS_REGISTRY, str(block.get('type'))):
            check_keyword_options(f'train.{key}', _lookup(LOSS_REGISTRY, str(block['type'])), block)
        elif key not in read_keys:
            check_loss_block(key, block)


def check_device_options(opt: dict) -> None:
    """``num_gpu`` and ``prefetch_mode: cuda`` need CUDA."""
    import torch
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


#: What BasicSR appends to an experiment name in file and folder names: ``<name>_archived_<YYYYmmdd_HHMMSS>`` and
#: ``train_<name>_<YYYYmmdd_HHMMSS>.log``.
NAME_ADDITIONS = max(len('_archived_20261206_010203'), len('train__20261206_010203.log'))


def check_experiment_name(opt: dict, root: str = '.') -> None:
    """``name`` becomes a folder under experiments/ and results/: one plain folder name, no path, short enough for
    the file system with what BasicSR appends to it."""
    name = opt.get('name')
    if not isinstance(name, str) or not name.strip() or name in ('.', '..') or any(sep in name for sep in '/\\'):
        raise ValueError(f"name {name!r} must be a plain folder name (it becomes experiments/<name> and "
                         "results/<name>): no '/', '\\', '.' or '..'")
    folder = next((path for path in (root, os.getcwd()) if osp.isdir(path)), '.')
    try:
        limit = os.pathconf(folder, 'PC_NAME_MAX')
    except (OSError, ValueError, AttributeError):
        limit = 255
    if len(name.encode('utf-8', 'surrogateescape')) + NAME_ADDITIONS > limit:
        raise ValueError(f'name is {len(name.encode("utf-8", "surrogateescape"))} bytes long: with what BasicSR '
                         f'appends to it (log and archive names, {NAME_ADDITIONS} bytes) it would exceed the file '
                         f'system limit of {limit} bytes per name; shorten it')


def model_module(opt: Mapping) -> str:
    """The module that defines the model of ``opt`` ('' when the model type is not registered)."""
    from basicsr.utils.registry import MODEL_REGISTRY
    model_type = str(opt.get('model_type'))
    return _lookup(MODEL_REGISTRY, model_type).__module__ if _registered(MODEL_REGISTRY, model_type) else ''


def knows_every_key(opt: Mapping) -> bool:
    """Whether the model of ``opt`` is BasicSR's or the plugin's, so that every key it reads is in the schema."""
    return model_module(opt).startswith(('basicsr.', 'ddr_basicsr.'))


def check_options(opt: dict, is_train: bool) -> None:
    """All option checks; they run before any folder or file is created."""
    from ddr_basicsr.host.option_schema import check_schema
    check_experiment_name(opt)
    check_model_options(opt, is_train)
    known = knows_every_key(opt)
    if is_train and known:
        from ddr_basicsr.models.optimizers import check_optimizer_choices
        check_optimizer_choices(opt.get('train') or {}, plugin_model=model_module(opt).startswith('ddr_basicsr.'))
    check_schema(opt, is_train, strict_keys=known)
    check_validation_metrics(opt)
    check_logger_options(opt)
    check_device_options(opt)
    check_dataset_paths(opt)


def set_test_defaults(opt: dict) -> None:
    """Defaults for the ``val`` keys BasicSR's test pipeline reads: ``save_img: false``, ``suffix: ~``."""
    if not opt.get('val'):
        opt['val'] = {}
    opt['val'].setdefault('save_img', False)
    opt['val'].setdefault('suffix', None)
