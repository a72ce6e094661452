"""RestorationModel's speed options train as the plain path does: same losses, gradients and weights.

Two steps of a tiny NAFNet (PSNRLoss, AdamW, gradient clipping as in the official recipe) on a fixed batch, compared
with the plain path (every speed option off). Tolerances: options that claim no change at all (non-blocking copies,
deferred loss log) are compared bit for bit; fp32 options that change rounding (fused/foreach AdamW, channels-last,
torch.compile) within 1e-6 (losses relative, gradients relative to the largest gradient, weights absolute; about
1e-7 is seen); bf16 autocast within 1e-2 (losses) and 5e-2 (gradients), weights not compared (the first AdamW steps
are about lr * sign(gradient), which flips for tiny gradients).
"""
import warnings
from collections import OrderedDict
from typing import Dict, List, NamedTuple

import pytest
import torch

from ddr_basicsr.host.options import check_train_keys
from ddr_basicsr.models.restoration_model import RestorationModel
from ddr_basicsr.tools.benchmarking import measure_training, training_table
from test_cuda_graphs import needs_cuda
from tiny_training import TINY_NAFNET

PLAIN = {'non_blocking_copy': False, 'deferred_loss_log': False}
FP32_TOLERANCE = 1e-6


class StepResult(NamedTuple):
    losses: List[Dict[str, float]]
    gradients: List[torch.Tensor]
    weights: List[torch.Tensor]


def adamw(**extra) -> dict:
    return {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9], **extra}


def model_options(**train) -> dict:
    return {'name': 'speed', 'model_type': 'RestorationModel', 'scale': 1, 'is_train': True, 'dist': False,
            'num_gpu': 0, 'network_g': dict(TINY_NAFNET), 'path': {},
            'train': {'optim_g': adamw(), 'use_grad_clip': True, 'grad_clip_norm': 0.01,
                      'pixel_opt': {'type': 'PSNRLoss', 'loss_weight': 1.0}, **train}}


def tiny_batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {'lq': torch.rand(2, 3, 16, 16, generator=generator), 'gt': torch.rand(2, 3, 16, 16, generator=generator)}


def new_model(**train) -> RestorationModel:
    torch.manual_seed(0)
    return RestorationModel(model_options(**train))


def train_two_steps(model: RestorationModel) -> StepResult:
    batch, losses = tiny_batch(), []
    for iteration in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(iteration)
        losses.append(dict(model.log_dict))
    parameters = list(model.get_bare_model(model.net_g).parameters())
    return StepResult(losses, [p.grad.clone() for p in parameters], [p.detach().clone() for p in parameters])


@pytest.fixture(scope='module')
def plain() -> StepResult:
    return train_two_steps(new_model(**PLAIN))


def differences(result: StepResult, reference: StepResult) -> Dict[str, float]:
    """Largest relative loss difference, gradient difference relative to the largest gradient, weight difference."""
    largest_gradient = max(g.abs().max().item() for g in reference.gradients)
    return {
        'loss': max(abs(step[name] - expected[name]) / abs(expected[name])
                    for step, expected in zip(result.losses, reference.losses) for name in expected),
        'gradient': max((a - b).abs().max().item() for a, b in zip(result.gradients, reference.gradients))
        / largest_gradient,
        'weight': max((a - b).abs().max().item() for a, b in zip(result.weights, reference.weights)),
    }


def test_result_invariant_options_are_on_by_default_and_change_no_number(plain):
    model = new_model()
    assert (model.non_blocking_copy, model.deferred_loss_log, model.channels_last) == (True, True, False)
    assert model.train_network is model.net_g
    result = train_two_steps(model)
    assert result.losses == plain.losses
    assert all(torch.equal(a, b) for a, b in zip(result.gradients, plain.gradients))
    assert all(torch.equal(a, b) for a, b in zip(result.weights, plain.weights))


@pytest.mark.parametrize('train', [{'optim_g': adamw(fused=True)}, {'optim_g': adamw(foreach=True)},
                                   {'channels_last': True}], ids=['fused', 'foreach', 'channels_last'])
def test_fp32_options_train_as_the_plain_path(plain, train):
    model = new_model(**PLAIN, **train)
    result = train_two_steps(model)
    assert all(value <= FP32_TOLERANCE for value in differences(result, plain).values()), differences(result, plain)
    if train.get('channels_last'):
        bare = model.get_bare_model(model.net_g)
        assert bare.intro.weight.is_contiguous(memory_format=torch.channels_last)
        assert model.lq.is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_trains_close_to_fp32(plain):
    found = differences(train_two_steps(new_model(**PLAIN, mixed_precision='bf16')), plain)
    assert found['loss'] <= 1e-2 and found['gradient'] <= 5e-2, found


def test_compiled_training_forward_trains_as_the_plain_path_and_saves_plain_keys(plain):
    """Dynamo's eager backend (Inductor takes about 5 minutes on a 2-core CPU; this takes about 4 s): the compiled
    callable is used for training while validation, EMA and checkpoints keep the uncompiled network and its
    parameter names."""
    torch._dynamo.reset()
    model = new_model(**PLAIN, compile={'backend': 'eager'})
    assert isinstance(model.train_network, torch._dynamo.eval_frame.OptimizedModule)
    result = train_two_steps(model)
    assert all(value <= FP32_TOLERANCE for value in differences(result, plain).values()), differences(result, plain)
    state_keys = list(model.get_bare_model(model.net_g).state_dict())
    assert state_keys == list(new_model().net_g.state_dict())


def test_deferred_loss_log_reads_losses_only_when_asked(plain, monkeypatch):
    model = new_model(**{**PLAIN, 'deferred_loss_log': True})
    reads = []
    reduce_loss_dict = model.reduce_loss_dict
    monkeypatch.setattr(model, 'reduce_loss_dict', lambda losses: reads.append(1) or reduce_loss_dict(losses))
    batch = tiny_batch()
    for iteration in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(iteration)
    assert reads == []
    assert model.get_current_log() == plain.losses[-1]
    assert isinstance(model.get_current_log(), OrderedDict) and reads == [1]


@needs_cuda
def test_training_steps_synchronise_only_for_the_non_finite_check():
    """Defaults and a pinned batch (PSNRLoss only: DDR checks its input for NaN, which synchronises): CUDA's sync
    debug mode warns on each synchronising call. A step makes at most one, the check that ``l_total`` is finite;
    reading the log makes the losses' own."""
    model = RestorationModel({**model_options(), 'num_gpu': 1})
    batch = {key: value.pin_memory() for key, value in tiny_batch().items()}
    for iteration in (1, 2):  # optimizer state and cuDNN set-up
        model.feed_data(batch)
        model.optimize_parameters(iteration)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            for iteration in (3, 4):
                model.feed_data(batch)
                model.optimize_parameters(iteration)
            in_steps = sum('synchroniz' in str(warning.message) for warning in caught)
            model.get_current_log()
            in_log = sum('synchroniz' in str(warning.message) for warning in caught) - in_steps
        finally:
            torch.cuda.set_sync_debug_mode('default')
    assert in_steps <= 2 and in_log >= 1, (in_steps, in_log)


@pytest.mark.parametrize('train, message', [
    ({'channels_last': 'yes'}, r"train.channels_last must be true or false, got 'yes'"),
    ({'compile': 'fast'}, r'train.compile must be true, false or a mapping of torch.compile arguments'),
    ({'compile': {'mdoe': 'max-autotune'}}, r"train.compile.mdoe: compile has no option 'mdoe' \(did you mean 'mode'"),
])
def test_bad_speed_options_name_the_fix(train, message):
    with pytest.raises(ValueError, match=message):
        new_model(**train)


def test_option_checks_know_the_speed_options():
    check_train_keys({'channels_last': True, 'compile': True, 'non_blocking_copy': True, 'deferred_loss_log': True})
    with pytest.raises(ValueError, match=r"train.channel_last is not read by any model \(did you mean 'channels_last'"):
        check_train_keys({'channel_last': True})


def test_benchmark_times_the_stock_step_and_ours_and_gives_ratios_against_stock():
    measurements = [measure_training(torch.device('cpu'), 'nafnet', variant, None, iters=1, warmup=1, tiny=True)
                    for variant in ('stock', 'defaults')]
    rows = training_table(measurements)
    assert rows[2].startswith('| nafnet | without DDR | stock | ') and '| 1.00 | n/a | n/a |' in rows[2]
    ratio = measurements[1].steps_per_s / measurements[0].steps_per_s
    assert rows[3].startswith('| nafnet | without DDR | defaults | ') and f'| {ratio:.2f} |' in rows[3]
