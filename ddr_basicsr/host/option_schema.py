"""The option schema of plugin runs: every option that BasicSR or ddr-basicsr reads, with its type and range.

:func:`check_schema` runs with the other option checks, before anything is written: a value of the wrong type
(``total_iter: '1000'``), out of range (``print_freq: 0``, ``ema_decay: 1.5``) or an unknown key of a known section
(``trian:``, ``val.metric``, with the close match) is a ValueError naming the option and the value. Loss blocks,
networks and metrics are checked against their class signatures elsewhere (:mod:`.options`).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from ddr_basicsr.training.option_checks import did_you_mean

_NUMBER = (int, float)
_NO_EXAMPLE = object()


@dataclass(frozen=True)
class Rule:
    """What one option accepts: Python types (bool is not a number), a range check and the words for both."""
    kinds: Tuple[type, ...]
    expect: str
    check: Optional[Callable[[Any], bool]] = None
    optional: bool = False
    out_of_range: Any = _NO_EXAMPLE  # a value of the right type that ``check`` refuses (for the schema test)

    def problem(self, value: Any) -> Optional[str]:
        """None when ``value`` is accepted, else what is wrong."""
        if (value is None and self.optional) or object in self.kinds:
            return None
        right_type = isinstance(value, self.kinds) and not (isinstance(value, bool) and bool not in self.kinds)
        if not right_type or (self.check is not None and not self.check(value)):
            return f'must be {self.expect}{" (or ~)" if self.optional else ""}'
        return None


def _maybe(rule: Rule) -> Rule:
    return Rule(rule.kinds, rule.expect, rule.check, True, rule.out_of_range)


def _choice(*values: Any) -> Rule:
    return Rule((str, bool, type(None)), 'one of ' + ', '.join('~' if v is None else str(v) for v in values),
                lambda value: value in values)


POSITIVE_INT = Rule((int, ), 'a positive integer', lambda v: v >= 1, out_of_range=0)
NON_NEGATIVE_INT = Rule((int, ), 'an integer >= 0', lambda v: v >= 0, out_of_range=-1)
FREQUENCY = Rule(_NUMBER, 'a number of iterations >= 1', lambda v: v >= 1, out_of_range=0)
POSITIVE_NUMBER = Rule(_NUMBER, 'a number > 0', lambda v: v > 0, out_of_range=0)
PROBABILITY = Rule(_NUMBER, 'a probability in [0, 1]', lambda v: 0 <= v <= 1, out_of_range=1.5)
BOOLEAN = Rule((bool, ), 'true or false')
TEXT = Rule((str, ), 'a non-empty string', lambda v: bool(v.strip()), out_of_range=' ')
MAPPING = Rule((Mapping, ), 'a mapping (key: value lines)')
LIST = Rule((list, ), 'a list, e.g. [0.2, 0.7, 0.1]')
ANY = Rule((object, ), 'anything')

_REAL_ESRGAN = {key: rule for names, rule in (
    (('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'high_order_degradation'), BOOLEAN),
    (('gaussian_noise_prob', 'gray_noise_prob', 'second_blur_prob', 'gaussian_noise_prob2', 'gray_noise_prob2'),
     PROBABILITY),
    (('resize_prob', 'resize_range', 'noise_range', 'poisson_scale_range', 'jpeg_range', 'resize_prob2',
      'resize_range2', 'noise_range2', 'poisson_scale_range2', 'jpeg_range2'), LIST),
    (('gt_size', 'queue_size'), POSITIVE_INT)) for key in names}

#: section -> option -> rule. ``''`` is the top level; ``datasets`` holds the loader options of every data set.
SCHEMA: Dict[str, Dict[str, Rule]] = {
    '': {'name': TEXT, 'model_type': TEXT, 'scale': POSITIVE_INT,
         'num_gpu': Rule((int, str), "a number of GPUs >= 0 or 'auto'",
                         lambda v: v == 'auto' if isinstance(v, str) else v >= 0, out_of_range=-1),
         'manual_seed': _maybe(NON_NEGATIVE_INT), 'datasets': MAPPING, 'network_g': MAPPING, 'network_d': MAPPING,
         'path': MAPPING, 'train': MAPPING, 'val': _maybe(MAPPING), 'logger': MAPPING, 'dist_params': _maybe(MAPPING),
         'find_unused_parameters': BOOLEAN, **_REAL_ESRGAN,
         # set by parse_options itself
         'is_train': ANY, 'dist': ANY, 'rank': ANY, 'world_size': ANY, 'auto_resume': ANY, 'root_path': ANY},
    'train': {'total_iter': POSITIVE_INT, 'warmup_iter': Rule((int, ), 'an integer >= -1 (-1: no warm-up)',
                                                              lambda v: v >= -1, out_of_range=-2),
              'ema_decay': Rule(_NUMBER, 'a number in [0, 1)', lambda v: 0 <= v < 1, out_of_range=1.5),
              'net_d_iters': POSITIVE_INT, 'net_d_init_iters': NON_NEGATIVE_INT, 'use_grad_clip': BOOLEAN,
              'grad_clip_norm': POSITIVE_NUMBER, 'max_nonfinite_skips': NON_NEGATIVE_INT,
              'mixed_precision': _choice(None, False, 'fp32', 'float32', 'bf16', 'bfloat16'),
              'non_blocking_copy': BOOLEAN, 'deferred_loss_log': BOOLEAN, 'channels_last': BOOLEAN,
              'compile': Rule((bool, Mapping), 'true, false or a mapping of torch.compile arguments', optional=True),
              'optim_g': MAPPING, 'optim_d': MAPPING, 'scheduler': _maybe(MAPPING), 'progressive': _maybe(MAPPING),
              'fix_flow': _maybe(NON_NEGATIVE_INT), 'flow_lr_mul': Rule(_NUMBER, 'a number >= 0', lambda v: v >= 0,
                                                                         out_of_range=-1)},
    'logger': {'print_freq': FREQUENCY, 'save_checkpoint_freq': FREQUENCY, 'use_tb_logger': BOOLEAN,
               'wandb': _maybe(MAPPING)},
    'val': {'val_freq': FREQUENCY, 'save_img': BOOLEAN, 'metrics': _maybe(MAPPING), 'suffix': _maybe(TEXT),
            'window_size': _maybe(POSITIVE_INT), 'val_at_start': BOOLEAN, 'pbar': BOOLEAN, 'flip_seq': BOOLEAN,
            'center_frame_only': BOOLEAN},
    'path': {'resume_state': _maybe(TEXT), 'ignore_resume_networks': _maybe(LIST),
             **{key: ANY for key in ('experiments_root', 'models', 'training_states', 'log', 'visualization',
                                     'results_root')}},
    'datasets': {'batch_size_per_gpu': POSITIVE_INT, 'num_worker_per_gpu': NON_NEGATIVE_INT,
                       'gt_size': POSITIVE_INT, 'dataset_enlarge_ratio': POSITIVE_INT, 'use_hflip': BOOLEAN,
                       'use_rot': BOOLEAN, 'use_shuffle': BOOLEAN, 'prefetch_mode': _choice(None, 'cpu', 'cuda'),
                       'pin_memory': BOOLEAN, 'persistent_workers': BOOLEAN, 'skip_unreadable': BOOLEAN,
                       'num_prefetch_queue': POSITIVE_INT},
}
#: ``path`` options of each network (``network_g`` -> ``pretrain_network_g``, ``strict_load_g``, ``param_key_g``).
NETWORK_PATH_RULES = {'pretrain_network': _maybe(TEXT), 'strict_load': BOOLEAN,
                      'param_key': _choice(None, 'params', 'params_ema')}
#: Keys of every dataset section (BasicSR's PairedImageDataset / SingleImageDataset read these).
DATASET_KEYS = {'name': TEXT, 'type': TEXT, 'phase': ANY, 'scale': ANY, 'dataroot_gt': _maybe(TEXT),
                'dataroot_lq': _maybe(TEXT), 'meta_info_file': _maybe(TEXT), 'filename_tmpl': TEXT,
                'io_backend': MAPPING, 'mean': _maybe(LIST), 'std': _maybe(LIST), 'color': _maybe(TEXT)}
#: Datasets whose keys are all known here (other datasets read keys of their own).
CHECKED_DATASET_TYPES = ('PairedImageDataset', 'SingleImageDataset')


def section_rules(opt: Mapping) -> Iterator[Tuple[str, Mapping, Dict[str, Rule], bool]]:
    """(label, section, rules, whether unknown keys are errors) for every section of ``opt`` the schema knows."""
    yield '', opt, SCHEMA[''], True
    for name in ('train', 'logger', 'val'):
        if isinstance(opt.get(name), Mapping):
            yield name, opt[name], SCHEMA[name], True
    if isinstance(opt.get('path'), Mapping):
        rules = dict(SCHEMA['path'])
        for network in (key[len('network_'):] for key in opt if key.startswith('network_')):
            rules.update({f'{prefix}_{network}': rule for prefix, rule in NETWORK_PATH_RULES.items()})
        yield 'path', opt['path'], rules, True
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, Mapping):
            rules = {**DATASET_KEYS, **SCHEMA['datasets']}
            yield f'datasets.{phase}', dataset, rules, dataset.get('type') in CHECKED_DATASET_TYPES


def check_schema(opt: Mapping, is_train: bool, strict_keys: bool = True) -> None:
    """Types and ranges of every known option; unknown keys of known sections when ``strict_keys`` (the model is
    BasicSR's or the plugin's: other models may read keys of their own)."""
    for label, section, rules, unknown_is_error in section_rules(opt):
        if label == 'train' and not is_train:
            continue
        where = f'{label}.' if label else ''
        for key, value in section.items():
            if label == 'train' and key.endswith('_opt'):
                continue
            rule = rules.get(key)
            if rule is None:
                if strict_keys and unknown_is_error:
                    top = ' (top level)' if not label else ''
                    raise ValueError(f'{where}{key}{top} is not an option that BasicSR or ddr-basicsr reads'
                                     f'{did_you_mean(key, rules)}; it would be ignored')
                continue
            problem = rule.problem(value)
            if problem:
                raise ValueError(f'{where}{key} {problem}, got {value!r}')
