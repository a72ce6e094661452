"""BasicSR's loss contract for all six losses: forward(pred, target=None, weight=None), reduction none/mean/sum."""
import copy
import math

import pytest
import torch
from basicsr.losses import build_loss

IMAGE_LEVEL_LOSSES = ('DDRLoss', 'LPIPSLoss', 'ContextualLoss', 'PDLLoss', 'FDLLoss')
ALL_LOSSES = ('PSNRLoss', ) + IMAGE_LEVEL_LOSSES


def loss_options(name: str, clip_path: str, reduction: str = 'mean') -> dict:
    extra = {'DDRLoss': {'pretrained': clip_path}, 'FDLLoss': {'num_proj': 4, 'patch_size': 1, 'pretrained': False},
             'LPIPSLoss': {'pretrained': False}, 'ContextualLoss': {'pretrained': False},
             'PDLLoss': {'pretrained': False}}.get(name, {})
    return {'type': name, 'loss_weight': 0.5, 'reduction': reduction, **extra}


@pytest.fixture(scope='module')
def losses(tiny_clip_path):
    """Each loss built once with ``reduction: none``; its ``mean`` and ``sum`` variants share the modules."""
    built = {}
    for name in ALL_LOSSES:
        base = build_loss(loss_options(name, tiny_clip_path, 'none'))
        built[name, 'none'] = base
        for reduction in ('mean', 'sum'):
            built[name, reduction] = copy.copy(base)
            built[name, reduction].reduction = reduction
    return built


@pytest.fixture(scope='module')
def pair():
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(3, 3, 32, 32, generator=generator)
    pred = (target + 0.1 * torch.randn(3, 3, 32, 32, generator=generator)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_reductions_agree_with_the_per_image_values(losses, pair, name):
    with torch.no_grad():
        per_image = losses[name, 'none'](*pair, weight=None)
        mean = losses[name, 'mean'](*pair)
        total = losses[name, 'sum'](*pair)
    assert per_image.shape == (3,) and torch.isfinite(per_image).all()
    assert mean.shape == () and mean.item() == pytest.approx(per_image.mean().item(), rel=1e-5, abs=1e-7)
    assert total.item() == pytest.approx(per_image.sum().item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize('name, shape', [(name, (3, 1, 1, 1)) for name in ALL_LOSSES] +
                         [(name, (3,)) for name in IMAGE_LEVEL_LOSSES])
def test_one_weight_per_image_weights_the_batch_as_basicsr_does(losses, pair, name, shape):
    weight = torch.tensor([1.0, 0.0, 3.0]).view(shape)
    with torch.no_grad():
        per_image = losses[name, 'none'](*pair)
        weighted_none = losses[name, 'none'](*pair, weight=weight)
        weighted_mean = losses[name, 'mean'](*pair, weight=weight)
        weighted_sum = losses[name, 'sum'](*pair, weight=weight)
    flat = weight.flatten()
    assert torch.allclose(weighted_none, per_image * flat, rtol=1e-5, atol=1e-7)
    assert weighted_sum.item() == pytest.approx((per_image * flat).sum().item(), rel=1e-5, abs=1e-7)
    assert weighted_mean.item() == pytest.approx((per_image * flat).sum().item() / 4.0, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize('name', IMAGE_LEVEL_LOSSES)
def test_image_level_losses_refuse_an_elementwise_weight(losses, pair, name):
    with pytest.raises(ValueError, match=rf'{name} cannot take an element-wise weight \(got shape \(3, 1, 32, 32\)\): '
                                         r'it .*Pass one weight per image, shape \(3,\)'):
        losses[name, 'mean'](*pair, weight=torch.ones(3, 1, 32, 32))


def test_psnr_loss_takes_an_elementwise_weight(losses, pair):
    pred, target = pair
    weight = torch.zeros(3, 1, 32, 32)
    weight[:, :, :16] = 1.0  # the top half of every image counts
    weight[2] *= 2.0
    per_image = losses['PSNRLoss', 'none'](pred, target, weight=weight)
    top_mse = (pred - target)[:, :, :16].pow(2).mean(dim=(1, 2, 3))
    top_psnr_loss = 0.5 * 10 / math.log(10) * torch.log(top_mse + 1e-8)
    image_weight = torch.tensor([0.5, 0.5, 1.0])  # mean of each image's weight
    assert torch.allclose(per_image, top_psnr_loss * image_weight, rtol=1e-5)
    expected_mean = (top_psnr_loss * image_weight).sum() / image_weight.sum()
    weighted_mean = losses['PSNRLoss', 'mean'](pred, target, weight=weight)
    assert weighted_mean.item() == pytest.approx(expected_mean.item(), rel=1e-5)
    uniform = losses['PSNRLoss', 'mean'](pred, target, weight=torch.ones(3, 3, 32, 32))
    assert uniform.item() == pytest.approx(losses['PSNRLoss', 'mean'](pred, target).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"weight must be element-wise, shape \(3, 1, 32, 32\) or \(3, 3, 32, 32\)"):
        losses['PSNRLoss', 'mean'](pred, target, weight=torch.ones(3, 2, 32, 32))
    with pytest.raises(ValueError, match=r"weight must be element-wise.*got \(3,\)"):
        losses['PSNRLoss', 'mean'](pred, target, weight=torch.ones(3))


def test_weights_flow_into_the_gradient(losses, pair):
    pred = pair[0].clone().requires_grad_(True)
    losses['PSNRLoss', 'mean'](pred, pair[1], weight=torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1, 1)).backward()
    assert pred.grad[0].abs().sum() > 0 and pred.grad[1:].abs().sum() == 0


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_unknown_reduction_is_a_value_error(tiny_clip_path, name):
    with pytest.raises(ValueError, match=rf"{name}: unknown reduction 'max'; choose one of none, mean, sum"):
        build_loss(loss_options(name, tiny_clip_path, reduction='max'))


@pytest.mark.parametrize('name', [name for name in ALL_LOSSES if name != 'DDRLoss'])
def test_reference_losses_need_a_target(losses, pair, name):
    with pytest.raises(ValueError, match=rf'{name} compares the output with a target: call it as loss\(pred, target\)'):
        losses[name, 'mean'](pair[0])


def test_ddr_loss_needs_no_target_and_ignores_extra_keywords(losses, pair):
    with torch.no_grad():
        alone = losses['DDRLoss', 'none'](pair[0])
        with_target = losses['DDRLoss', 'none'](pair[0], pair[1], weight=None, extra='ignored')
    assert torch.equal(alone, with_target)
