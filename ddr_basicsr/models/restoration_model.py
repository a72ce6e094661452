"""``RestorationModel``: BasicSR's ``SRModel`` with any number of loss blocks, DDR among them.

Every ``train.<name>_opt`` block is a loss built through BasicSR's ``LOSS_REGISTRY``; the training
objective is their sum (DDR paper Eq. 8: L_rec + lambda_d * L_ddr, Eq. 9 when a competing loss is
added), each term logged as ``l_<name>`` next to ``l_total``. No-reference losses (class attribute
``requires_reference = False``, e.g. ``DDRLoss``) get the output only. Options that ``SRModel``
understands keep their meaning, so BasicSR configs run unchanged.

Added for the official NAFNet / Restormer recipes: any ``torch.optim`` optimizer (AdamW), the
``TrueCosineAnnealingLR`` and ``CosineAnnealingRestartCyclicLR`` schedules, gradient-norm clipping
(``use_grad_clip``, ``grad_clip_norm``), bf16 autocast of the restoration network
(``mixed_precision: bf16``), Restormer's progressive patch/batch schedule (``progressive``) and
reflect-padding of validation inputs to a multiple of ``val.window_size`` (or ``network_g.window_size``).
For fine-tuning, ``val.val_at_start: true`` validates the starting network before the first iteration of a
fresh run (BasicSR 1.4.2's loop validates only every ``val_freq`` iterations), logged as iteration 0.

A NaN/Inf loss term or network output stops training before the update with the iteration and the term
(:class:`NonFiniteLossError`); ``train.max_nonfinite_skips: N`` skips up to N such steps instead, counted in
the log as ``nonfinite_skips``.

Speed options of ``train`` (on by default where they cannot change a number, off where they change rounding):

- ``non_blocking_copy: true``: ``feed_data`` copies batches to the GPU with ``non_blocking=True``; with
  ``datasets.train.pin_memory: true`` the copy no longer blocks the host. A batch that BasicSR's CUDA prefetcher
  (``prefetch_mode: cuda``) already put on the GPU is marked as used by the training stream (``record_stream``),
  so the prefetcher cannot reuse its memory while a queued step still reads it.
- ``deferred_loss_log: true``: the step keeps its loss tensors; they are averaged over processes and read on the
  host (one synchronisation) only when ``log_dict`` / ``get_current_log()`` is read, which BasicSR's training loop
  does every ``logger.print_freq`` iterations on every process. The values are those of the last step, as before.
  The non-finite check above still reads ``l_total`` once a step.
- ``channels_last: false``: the restoration network's weights and inputs in channels-last memory format.
- ``compile: false``: the training forward of the restoration network through ``torch.compile`` (``true``, or a
  mapping of ``torch.compile`` arguments such as ``{mode: max-autotune}``); validation, EMA and checkpoints use
  the uncompiled network, so saved keys are unchanged.
- ``optim_g: {fused: true}`` or ``{foreach: true}``: torch's own fused / multi-tensor AdamW (Adam, SGD, ...).
"""
import math
from collections import OrderedDict
from itertools import accumulate
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY
from torch import Tensor, nn

from ddr_basicsr.models.optimizers import OptimizerChoicesMixin
from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
from ddr_basicsr.training.loss_blocks import LOSS_BLOCK_SUFFIX, loss_block_keys, take_prebuilt_loss
from ddr_basicsr.training.option_checks import check_keyword_options
from ddr_basicsr.training.resume import rng_states_kept

AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16}
# Names given to the parts of a loss that returns a tuple (BasicSR's PerceptualLoss: perceptual, style).
TUPLE_PART_SUFFIXES = ('', '_style')
#: On/off speed options of ``train`` and their defaults (on: cannot change a number; off: changes rounding).
SPEED_SWITCHES = {'non_blocking_copy': True, 'deferred_loss_log': True, 'channels_last': False}


def speed_switch(train_opt: dict, name: str) -> bool:
    """``train.<name>`` (one of ``SPEED_SWITCHES``), its default when absent; anything but a boolean is an error."""
    value = train_opt.get(name)
    if value is None:
        return SPEED_SWITCHES[name]
    if not isinstance(value, bool):
        raise ValueError(f'train.{name} must be true or false, got {value!r}')
    return value


def compile_arguments(train_opt: dict) -> Optional[dict]:
    """Keyword arguments of ``torch.compile`` from ``train.compile`` (false/~: None, true: {}, or a mapping)."""
    value = train_opt.get('compile')
    if value in (None, False):
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f'train.compile must be true, false or a mapping of torch.compile arguments such as '
                         f'{{mode: max-autotune}}, got {value!r}')
    check_keyword_options('train.compile', torch.compile, value)
    return dict(value)


def check_loss_block(key: str, block: dict) -> None:
    """Raise a ValueError naming the fix when ``train.<key>`` cannot be built by RestorationModel."""
    if key == 'gan_opt':
        raise ValueError('train.gan_opt needs a discriminator (network_d), which RestorationModel does not train; '
                         'use model_type: DDRESRGANModel or DDRSRGANModel (BasicSR\'s GAN models with ddr_opt and '
                         'other extra loss blocks, see "DDR in GAN-based and real-world SR"), or remove gan_opt')
    if not isinstance(block, dict) or 'type' not in block:
        raise ValueError(f'train.{key} must be a mapping with a `type` key, e.g. {{type: L1Loss, loss_weight: 1.0}}; '
                         f'got {block!r}')
    loss_type = block['type']
    if loss_type not in LOSS_REGISTRY and f'{loss_type}_basicsr' not in LOSS_REGISTRY:
        registered = ', '.join(sorted(name for name, _ in LOSS_REGISTRY))
        raise ValueError(f"unknown loss type '{loss_type}' in train.{key}; registered losses: {registered}")


def build_loss_block(key: str, block: dict) -> nn.Module:
    """``train.<key>`` after checking it (see ``check_loss_block``): the module the pre-flight built for it (its
    weights load once per run), else built with BasicSR's ``build_loss``, the random generators put back either
    way, so that a loss block never changes what the seed gives the network or the data."""
    check_loss_block(key, block)
    loss = take_prebuilt_loss(block)
    if loss is not None:
        get_root_logger().info(f'Loss [{loss.__class__.__name__}] is created.')
        return loss
    with rng_states_kept():
        return build_loss(block)


def loss_terms(losses: Dict[str, nn.Module], output: Tensor, gt: Optional[Tensor]) -> 'OrderedDict[str, Tensor]':
    """The term ``l_<name>`` of each loss block (``l_<name>_style`` for the second part of a pair); no-reference
    losses (``requires_reference = False``, DDRLoss) get the output only."""
    terms: 'OrderedDict[str, Tensor]' = OrderedDict()
    for name, loss in losses.items():
        if getattr(loss, 'requires_reference', True):
            if gt is None:
                raise ValueError(f'train.{name}_opt ({type(loss).__name__}) compares with the ground truth, '
                                 'but the training data has no gt')
            value = loss(output, gt)
        else:
            value = loss(output)
        parts = value if isinstance(value, tuple) else (value, )
        if len(parts) > len(TUPLE_PART_SUFFIXES):
            raise TypeError(f'train.{name}_opt returned {len(parts)} values; a loss returns a tensor or a '
                            '(main, style) pair')
        for suffix, part in zip(TUPLE_PART_SUFFIXES, parts):
            if part is not None:
                terms[f'l_{name}{suffix}'] = part
    return terms


class NonFiniteLossError(FloatingPointError):
    """A loss term (or the network output) became NaN/Inf; raised before the update, so no weight is changed."""


class ProgressiveSchedule:
    """Restormer's progressive learning (Zamir et al., CVPR 2022, Sec. 3.3).

    Stage j covers iterations up to ``iters[0] + ... + iters[j]`` (the last stage continues beyond). In stage j
    each batch is reduced to ``mini_batch_sizes[j]`` random samples and cropped to ``gt_sizes[j]`` (GT pixels)
    at one random offset shared by the batch; the LQ crop is the matching region at 1/scale.
    """

    def __init__(self, iters: Sequence[int], gt_sizes: Sequence[int], mini_batch_sizes: Sequence[int],
                 scale: int = 1) -> None:
        if not (len(iters) == len(gt_sizes) == len(mini_batch_sizes)) or not iters:
            raise ValueError('train.progressive: iters, gt_sizes and mini_batch_sizes need the same non-zero length, '
                             f'got {len(iters)}, {len(gt_sizes)} and {len(mini_batch_sizes)}')
        if any(int(v) <= 0 for v in (*iters, *gt_sizes, *mini_batch_sizes)):
            raise ValueError('train.progressive: all iters, gt_sizes and mini_batch_sizes must be positive')
        if any(int(size) % scale for size in gt_sizes):
            raise ValueError(f'train.progressive.gt_sizes {list(gt_sizes)} must be multiples of the scale {scale}')
        self.stage_ends = list(accumulate(int(v) for v in iters))
        self.gt_sizes = [int(v) for v in gt_sizes]
        self.mini_batch_sizes = [int(v) for v in mini_batch_sizes]
        self.scale = scale

    def stage(self, current_iter: int) -> int:
        """Index of the stage that ``current_iter`` (1-based) belongs to."""
        return next((j for j, end in enumerate(self.stage_ends) if current_iter <= end), len(self.stage_ends) - 1)

    def __call__(self, lq: Tensor, gt: Tensor, current_iter: int) -> Tuple[Tensor, Tensor]:
        """Sub-batch and crop ``lq``/``gt`` for ``current_iter``."""
        stage = self.stage(current_iter)
        batch, lq_size = self.mini_batch_sizes[stage], self.gt_sizes[stage] // self.scale
        if batch < lq.size(0):
            keep = torch.randperm(lq.size(0))[:batch].to(lq.device, non_blocking=True)  # no stream synchronisation
            lq, gt = lq[keep], gt[keep]
        height, width = lq.shape[-2:]
        if lq_size > height or lq_size > width:
            raise ValueError(f'train.progressive.gt_sizes[{stage}] = {self.gt_sizes[stage]} is larger than the '
                             f'training patches ({height * self.scale}x{width * self.scale} GT pixels); raise '
                             'datasets.train.gt_size to max(gt_sizes)')
        top = int(torch.randint(height - lq_size + 1, ()))
        left = int(torch.randint(width - lq_size + 1, ()))
        s = self.scale
        lq = lq[..., top:top + lq_size, left:left + lq_size]
        gt = gt[..., top * s:(top + lq_size) * s, left * s:(left + lq_size) * s]
        return lq, gt

    @classmethod
    def from_options(cls, opt: dict) -> Optional['ProgressiveSchedule']:
        """Build from ``train.progressive`` and check it against the training loader (None when not set)."""
        progressive = opt['train'].get('progressive')
        if not progressive:
            return None
        missing = {'iters', 'gt_sizes', 'mini_batch_sizes'} - set(progressive)
        if missing:
            raise ValueError(f'train.progressive needs the keys {sorted(missing)}')
        schedule = cls(progressive['iters'], progressive['gt_sizes'], progressive['mini_batch_sizes'],
                       int(opt.get('scale', 1)))
        loader_opt = opt.get('datasets', {}).get('train', {})
        batch_size, gt_size = loader_opt.get('batch_size_per_gpu'), loader_opt.get('gt_size')
        if batch_size is not None and max(schedule.mini_batch_sizes) > batch_size:
            raise ValueError(f'train.progressive.mini_batch_sizes {schedule.mini_batch_sizes} exceed '
                             f'datasets.train.batch_size_per_gpu = {batch_size}; set it to their maximum')
        if gt_size is not None and max(schedule.gt_sizes) > gt_size:
            raise ValueError(f'train.progressive.gt_sizes {schedule.gt_sizes} exceed datasets.train.gt_size = '
                             f'{gt_size}; set it to their maximum')
        return schedule


@MODEL_REGISTRY.register()
class RestorationModel(OptimizerChoicesMixin, TrainingGuaranteesMixin, SRModel):
    """Image restoration with a sum of loss blocks (DDR Eq. 8/9); a superset of BasicSR's SRModel, with the
    plugin's training guarantees (:class:`TrainingGuaranteesMixin`).

    The speed options of ``train`` (module docstring) default to ``SPEED_SWITCHES`` in test mode as well.
    """
    non_blocking_copy = SPEED_SWITCHES['non_blocking_copy']
    deferred_loss_log = SPEED_SWITCHES['deferred_loss_log']
    channels_last = SPEED_SWITCHES['channels_last']
    _unread_losses: Optional[Dict[str, Tensor]] = None

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """Channels-last weights (``train.channels_last``) before the network is moved and wrapped for DDP."""
        if self.opt.get('is_train') and speed_switch(self.opt.get('train') or {}, 'channels_last'):
            net = net.to(memory_format=torch.channels_last)
        return super().model_to_device(net)

    def init_training_settings(self) -> None:
        self.net_g.train()
        train_opt = self.opt['train']
        self._init_ema(float(train_opt.get('ema_decay', 0)))
        self.losses: Dict[str, nn.Module] = OrderedDict(
            (key[:-len(LOSS_BLOCK_SUFFIX)], build_loss_block(key, train_opt[key]).to(self.device))
            for key in loss_block_keys(train_opt))
        if not self.losses:
            raise ValueError('no loss configured: add at least one train.<name>_opt block, e.g. '
                             'pixel_opt: {type: PSNRLoss, loss_weight: 1.0}')
        self.use_grad_clip = bool(train_opt.get('use_grad_clip', False))
        self.grad_clip_norm = float(train_opt.get('grad_clip_norm', 0.01))
        self.autocast_dtype = self._parse_mixed_precision(train_opt.get('mixed_precision'))
        self.progressive = ProgressiveSchedule.from_options(self.opt)
        self.max_nonfinite_skips = int(train_opt.get('max_nonfinite_skips', 0))
        self.nonfinite_skips = 0
        self.non_blocking_copy = speed_switch(train_opt, 'non_blocking_copy')
        self.deferred_loss_log = speed_switch(train_opt, 'deferred_loss_log')
        self.channels_last = speed_switch(train_opt, 'channels_last')
        compile_kwargs = compile_arguments(train_opt)
        self.train_network = self.net_g if compile_kwargs is None else torch.compile(self.net_g, **compile_kwargs)
        self.setup_optimizers()
        self.setup_schedulers()

    def _init_ema(self, decay: float) -> None:
        """Exponential moving average of net_g's weights (as SRModel), kept unwrapped on this device."""
        self.ema_decay = decay
        if decay <= 0:
            return
        get_root_logger().info(f'Use Exponential Moving Average with decay: {decay}')
        self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
        else:
            self.model_ema(0)
        self.net_g_ema.eval()

    @staticmethod
    def _parse_mixed_precision(value: Optional[str]) -> Optional[torch.dtype]:
        if value in (None, False, 'fp32', 'float32'):
            return None
        if value not in AUTOCAST_DTYPES:
            raise ValueError(f"train.mixed_precision must be ~ (fp32) or bf16, got {value!r} (fp16 would need "
                             'gradient scaling, which is not implemented)')
        return AUTOCAST_DTYPES[value]

    def feed_data(self, data: dict) -> None:
        """As SRModel's, with the copies of ``non_blocking_copy`` and the memory format of ``channels_last``.

        A pinned host batch may still be being read after this returns: change it in place only after the step
        (BasicSR's loaders make a new batch each step)."""
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        self.lq = self._to_device(data['lq'], memory_format)
        if 'gt' in data:
            self.gt = self._to_device(data['gt'], torch.preserve_format)

    def _to_device(self, tensor: Tensor, memory_format: torch.memory_format) -> Tensor:
        if tensor.is_cuda:  # put there by BasicSR's CUDAPrefetcher on its own stream
            tensor.record_stream(torch.cuda.current_stream(tensor.device))
        return tensor.to(self.device, non_blocking=self.non_blocking_copy, memory_format=memory_format)

    @property
    def log_dict(self) -> 'OrderedDict[str, float]':
        """Loss values of the last step (``l_<name>``, ``l_total``), averaged over processes.

        With ``deferred_loss_log`` they are read from the device here, on first access after a step; in
        distributed training every process must read them (BasicSR's loop does, at ``logger.print_freq``).
        """
        if self._unread_losses is not None:
            self._log_values = OrderedDict([*self.reduce_loss_dict(self._unread_losses).items(),
                                            *self._log_counters.items()])
            self._unread_losses = None
        return self._log_values

    @log_dict.setter
    def log_dict(self, values: 'OrderedDict[str, float]') -> None:
        self._unread_losses = None
        self._log_values = values

    def _record_losses(self, loss_dict: 'OrderedDict[str, Tensor]') -> None:
        """Keep the step's losses for ``log_dict``: as tensors (``deferred_loss_log``) or read now; plus the count
        of skipped non-finite steps when ``max_nonfinite_skips`` is set."""
        self._log_counters = OrderedDict(nonfinite_skips=self.nonfinite_skips) if self.max_nonfinite_skips else {}
        if self.deferred_loss_log:
            self._unread_losses = OrderedDict((name, value.detach()) for name, value in loss_dict.items())
        else:
            self.log_dict = OrderedDict([*self.reduce_loss_dict(loss_dict).items(), *self._log_counters.items()])

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """BasicSR's, preceded at the first iteration of a fresh run by :meth:`validate_at_start` when
        ``val.val_at_start`` is true (the loop calls this first at every iteration; a resumed run starts later)."""
        if current_iter == 1 and (self.opt.get('val') or {}).get('val_at_start'):
            self.validate_at_start()
        super().update_learning_rate(current_iter, warmup_iter)

    def validate_at_start(self) -> None:
        """Validate the starting network on every ``datasets.val*`` set, as iteration 0 (text log only: the
        TensorBoard writer belongs to the training loop)."""
        from basicsr.data import build_dataloader, build_dataset
        for phase, dataset_opt in self.opt['datasets'].items():
            if phase.split('_')[0] == 'val':
                loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=self.opt['num_gpu'],
                                          dist=self.opt['dist'], sampler=None, seed=self.opt['manual_seed'])
                self.validation(loader, 0, None, self.opt['val'].get('save_img', False))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def compute_losses(self, output: Tensor, gt: Optional[Tensor]) -> 'OrderedDict[str, Tensor]':
        """All loss terms ``l_<name>`` plus their sum ``l_total`` (Eq. 8/9)."""
        terms = loss_terms(self.losses, output, gt)
        if not terms:
            raise ValueError('every loss block returned None (all loss weights are zero)')
        terms['l_total'] = sum(terms.values())
        return terms

    def optimize_parameters(self, current_iter: int) -> None:
        gt = getattr(self, 'gt', None)
        if self.progressive is not None:
            self.lq, self.gt = self.progressive(self.lq, gt, current_iter)
            gt = self.gt
        self.optimizer_g.zero_grad()
        with self._autocast():
            output = self.train_network(self.lq)
        self.output = output.float()
        try:
            loss_dict = self.compute_losses(self.output, gt)
        except ValueError as error:  # a loss that checks its input (DDRLoss) refuses a non-finite output
            if bool(torch.isfinite(self.output).all()):
                raise
            self._on_nonfinite(current_iter, f'the network output holds NaN/Inf ({error})')
            return
        if not bool(torch.isfinite(loss_dict['l_total'])):
            values = ', '.join(f'{name} = {float(value.detach()):.4g}' for name, value in loss_dict.items())
            culprits = [name for name, value in loss_dict.items() if name != 'l_total' and not torch.isfinite(value)]
            self._on_nonfinite(current_iter, f"the loss term {', '.join(culprits) or 'l_total'} is not finite "
                                             f'({values})')
            return
        loss_dict['l_total'].backward()
        if self.use_grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_norm)
        self.optimizer_g.step()
        self._record_losses(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _on_nonfinite(self, current_iter: int, what: str) -> None:
        """Skip this step (``train.max_nonfinite_skips`` not used up) or stop with :class:`NonFiniteLossError`."""
        self.optimizer_g.zero_grad()
        if self.nonfinite_skips < self.max_nonfinite_skips:
            self.nonfinite_skips += 1
            get_root_logger().warning(f'iter {current_iter}: {what}; step skipped ({self.nonfinite_skips} of at most '
                                      f'train.max_nonfinite_skips = {self.max_nonfinite_skips})')
            return
        raise NonFiniteLossError(
            f'iteration {current_iter}: {what}. Training stopped before the update: no checkpoint holds non-finite '
            'weights and the newest saved one stays the one --auto_resume uses. Lower train.optim_g.lr, set '
            'use_grad_clip: true, or set train.max_nonfinite_skips: N to skip up to N such steps'
            f'{f" (all {self.max_nonfinite_skips} skips are used up)" if self.max_nonfinite_skips else ""}.')

    def test(self) -> None:
        """Inference in fp32 with the EMA network when there is one, padded as ``forward_padded`` says."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self.forward_padded(net, self.lq)
        net.train(was_training)

    def forward_padded(self, net: nn.Module, lq: Tensor) -> Tensor:
        """Reflect-pad ``lq`` to a multiple of ``val.window_size`` (else ``network_g.window_size``, as BasicSR's
        SwinIRModel) and of the network's ``size_multiple`` (Restormer: 8), run ``net``, crop the output back.
        An image no larger than the padding (6x6 with a window of 16) is padded by repeating its edge."""
        window_size = (self.opt.get('val') or {}).get('window_size') or self.opt['network_g'].get('window_size')
        window = math.lcm(int(window_size or 1), int(getattr(net, 'size_multiple', 1)))
        height, width = lq.shape[-2:]
        pad_h, pad_w = -height % window, -width % window
        if pad_h or pad_w:  # reflect needs a pad smaller than the image: replicate the edge of smaller images
            mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
            lq = F.pad(lq, (0, pad_w, 0, pad_h), mode=mode)
        scale = int(self.opt.get('scale', 1))
        return net(lq)[..., :height * scale, :width * scale]

    def _update_best_metric_result(self, dataset_name: str, metric: str, val, current_iter) -> None:
        # calculate_metric returns numpy scalars; keep plain floats in the model's state
        super()._update_best_metric_result(dataset_name, metric, float(val), current_iter)
