"""DDRLoss and PSNRLoss built through BasicSR's registry; the torchvision shim."""
import math
import sys

import pytest
import torch
from basicsr.losses import build_loss

import ddr_basicsr  # noqa: F401  (registers the losses)


def test_import_makes_basicsr_work_on_current_torchvision():
    import basicsr  # noqa: F401
    import torchvision.transforms._functional_tensor as renamed
    assert sys.modules['torchvision.transforms.functional_tensor'] is renamed


def test_ddr_loss_is_minus_weighted_mean_ddr(tiny_clip_path, reference_vectors):
    loss = build_loss({'type': 'DDRLoss', 'loss_weight': 2.0, 'pretrained': tiny_clip_path,
                       'degradations': ['color', 'content', 'blur']})
    images = torch.tensor(reference_vectors['train_batch'], requires_grad=True)
    value = loss(images, torch.zeros_like(images))
    assert abs(value.item() - 2.0 * float(reference_vectors['loss_restoration_set'])) < 2e-5
    value.backward()
    assert torch.allclose(images.grad, 2.0 * torch.tensor(reference_vectors['loss_restoration_set_grad']), atol=1e-5)
    assert loss(images.detach()).item() == pytest.approx(value.item(), abs=1e-5)  # target is optional
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.ddr.clip.training


def test_ddr_loss_reductions_and_options(tiny_clip_path):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    per_image = build_loss({'type': 'DDRLoss', 'pretrained': tiny_clip_path, 'reduction': 'none'})(images)
    total = build_loss({'type': 'DDRLoss', 'pretrained': tiny_clip_path, 'reduction': 'sum'})(images)
    assert per_image.shape == (3,) and total.item() == pytest.approx(per_image.sum().item(), rel=1e-6)
    custom = build_loss({'type': 'DDRLoss', 'pretrained': tiny_clip_path, 'degradations': ['haze'],
                         'prompts': {'haze': ['hazy', 'clear']}, 'adaptation': False})
    assert custom.ddr.degradation_names == ('haze',) and torch.isfinite(custom(images))
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        build_loss({'type': 'DDRLoss', 'pretrained': tiny_clip_path, 'reduction': 'max'})


def test_psnr_loss_matches_formula():
    loss = build_loss({'type': 'PSNRLoss', 'loss_weight': 1.0})
    pred = torch.full((2, 3, 8, 8), 0.5)
    target = pred.clone()
    target[0] += 0.1
    target[1] += 0.2
    expected = 10 / math.log(10) * (math.log(0.01 + 1e-8) + math.log(0.04 + 1e-8)) / 2
    assert loss(pred, target).item() == pytest.approx(expected, rel=1e-5)
    assert loss(pred, target).item() == pytest.approx(-(20 + 13.9794) / 2, abs=1e-3)  # minus mean PSNR in dB


def test_psnr_loss_to_y():
    loss = build_loss({'type': 'PSNRLoss', 'toY': True})
    pred = torch.zeros(1, 3, 4, 4)
    target = torch.zeros(1, 3, 4, 4)
    target[:, 1] = 0.5  # only green differs: Y differs by 0.5 * 128.553 / 255
    delta = 0.5 * 128.553 / 255
    assert loss(pred, target).item() == pytest.approx(10 / math.log(10) * math.log(delta ** 2 + 1e-8), rel=1e-5)
    with pytest.raises(ValueError, match='differ in shape'):
        loss(pred, target[:, :, :2])
