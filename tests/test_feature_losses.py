"""LPIPSLoss, ContextualLoss, PDLLoss, FDLLoss: minima, ordering, gradients, weights, bad input.

All trunks are randomly initialised (``pretrained: false``) and inputs are small, so nothing
touches the network and the file runs in well under a minute on 2 CPU cores.
"""
import math
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from scipy.stats import wasserstein_distance

import ddr_basicsr  # noqa: F401  (registers the losses)
from ddr_basicsr.losses.contextual_loss import ContextualLoss, contextual_loss_per_image, sample_positions
from ddr_basicsr.losses.fdl_loss import FDLLoss
from ddr_basicsr.losses.lpips_loss import LPIPSLoss
from ddr_basicsr.losses.pdl_loss import PDLLoss, channel_wasserstein_per_image
from ddr_basicsr.losses.vgg_features import VGG19Features, expected_cache_file

SIZE = 80  # FDL's minimum at its default layers
LOSS_NAMES = ('LPIPSLoss', 'ContextualLoss', 'PDLLoss', 'FDLLoss')
SHALLOW = {'relu1_2': 1.0}


@pytest.fixture(scope='module')
def losses():
    torch.manual_seed(0)
    return {
        'LPIPSLoss': LPIPSLoss(pretrained=False),
        'ContextualLoss': ContextualLoss(pretrained=False),
        'PDLLoss': PDLLoss(pretrained=False),
        'FDLLoss': FDLLoss(pretrained=False, num_proj=4),
    }


@pytest.fixture(scope='module')
def images():
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(1, 3, SIZE // 8, SIZE // 8, generator=generator)
    detail = torch.rand(1, 3, SIZE, SIZE, generator=generator)
    clean = (0.7 * F.interpolate(coarse, size=SIZE, mode='bilinear', align_corners=False) + 0.3 * detail)
    blurred = F.avg_pool2d(F.pad(clean, (2, 2, 2, 2), mode='reflect'), kernel_size=5, stride=1)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    return {'clean': clean, 'blurred': blurred, 'noisy': noisy}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache whose downloads fail at once, as on a machine without network."""
    def refuse(url, *args, **kwargs):
        raise URLError(f'no network in tests ({url})')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)
    return tmp_path / 'hub' / 'checkpoints'


def torchvision_style_state_dict(features: VGG19Features, fill: float) -> dict:
    """A torchvision-layout VGG19 state dict (``features.<i>.*`` plus a classifier entry) filled with ``fill``."""
    state = {f'features.{key}': torch.full_like(value, fill) for key, value in features.features.state_dict().items()}
    state['classifier.0.bias'] = torch.zeros(4096)
    return state


@pytest.fixture(scope='module')
def values(losses, images):
    """Each loss between the clean images and themselves, their blurred and their noisy versions."""
    with torch.no_grad():
        return {name: {target: loss(images['clean'], images[target]).item() for target in images}
                for name, loss in losses.items()}


@pytest.mark.parametrize('name', LOSS_NAMES)
def test_identical_images_give_the_documented_minimum_zero(values, name):
    assert values[name]['clean'] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('degradation', ('blurred', 'noisy'))
@pytest.mark.parametrize('name', LOSS_NAMES)
def test_degraded_target_scores_above_identical(values, name, degradation):
    degraded = values[name][degradation]
    assert math.isfinite(degraded) and degraded > values[name]['clean'] + 1e-4


@pytest.mark.parametrize('name', LOSS_NAMES)
def test_gradients_reach_the_output_and_are_finite(losses, images, name):
    output = images['noisy'].clone().requires_grad_(True)
    losses[name](output, images['clean']).backward()
    assert torch.isfinite(output.grad).all()
    assert output.grad.abs().sum() > 0


@pytest.mark.parametrize('name', LOSS_NAMES)
def test_trunk_stays_frozen_in_eval_mode_after_train(losses, name):
    loss = losses[name].train()
    assert not any(module.training for module in loss.modules())
    assert not any(param.requires_grad for param in loss.parameters())


@pytest.mark.parametrize('name', LOSS_NAMES)
def test_loss_weight_scales_a_loss_built_through_build_loss(images, name):
    extra = {'LPIPSLoss': {'net': 'alex'}, 'FDLLoss': {'layer_weights': SHALLOW, 'num_proj': 4}}.get(
        name, {'layer_weights': SHALLOW})
    crops = torch.cat([images['clean'], images['noisy']])[..., :40, :40]
    pair = crops, crops.flip(0)  # a batch of two
    values = []
    for weight in (1.0, 0.25):
        torch.manual_seed(3)
        loss = build_loss({'type': name, 'loss_weight': weight, 'pretrained': False, **extra})
        assert type(loss).__name__ == name
        with torch.no_grad():
            values.append(loss(pair[0], pair[1]).item())
    assert values[0] > 0 and values[1] == pytest.approx(0.25 * values[0], rel=1e-5)


def authors_contextual_loss(feat_x, feat_y, band_width=0.5, eps=1e-5, distance_scale=0.5):
    """The authors' CX per image, in float64 NumPy, step by step, for (B, C, N) output / target features:
    centre both by the target's mean over the batch, unit vectors, d = (1 - cos) * distance_scale (theirs: 1/2),
    d~ = d / (min over the target index + eps), w = exp((1 - d~) / h) normalised over the target index,
    max over the output index, mean over the target index, -log."""
    x, y = np.asarray(feat_x, dtype=np.float64), np.asarray(feat_y, dtype=np.float64)
    centre = y.mean(axis=(0, 2), keepdims=True)
    x, y = x - centre, y - centre
    x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    distance = (1 - np.einsum('bci,bcj->bij', x, y)) * distance_scale
    relative = distance / (distance.min(axis=2, keepdims=True) + eps)
    weights = np.exp((1 - relative) / band_width)
    cx = weights / weights.sum(axis=2, keepdims=True)
    return -np.log(cx.max(axis=1).mean(axis=1))


def test_contextual_matches_the_authors_formula_at_batch_two():
    generator = torch.Generator().manual_seed(2)
    feat_x = torch.randn(2, 8, 30, generator=generator, dtype=torch.float64)
    feat_y = torch.randn(2, 8, 30, generator=generator, dtype=torch.float64)
    feat_y[1, :4] += 1.5  # the two targets have different means: per-image centring would differ
    ours = contextual_loss_per_image(feat_x, feat_y).numpy()
    np.testing.assert_allclose(ours, authors_contextual_loss(feat_x, feat_y), rtol=1e-5)
    one_at_a_time = np.array([contextual_loss_per_image(feat_x[i:i + 1], feat_y[i:i + 1]).item() for i in range(2)])
    assert np.abs(one_at_a_time / ours - 1).max() > 0.01  # the batch enters through the centre


def test_contextual_matches_the_authors_formula_near_the_target():
    """Output features within ~1% of the target's: (1 - cos) / 2 with eps = 1e-5 sets the value here."""
    generator = torch.Generator().manual_seed(5)
    positions = torch.arange(40, dtype=torch.float64)
    offsets = torch.randn(2, 8, 1, generator=generator, dtype=torch.float64)
    phases = 3 * torch.randn(2, 8, 1, generator=generator, dtype=torch.float64)
    feat_y = offsets + torch.sin(positions / 6 + phases)  # smooth: neighbouring target vectors are alike
    feat_x = feat_y + 0.012 * torch.randn(feat_y.shape, generator=generator, dtype=torch.float64)
    ours = contextual_loss_per_image(feat_x, feat_y).numpy()
    expected = authors_contextual_loss(feat_x, feat_y)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert expected.min() > 1e-7
    unhalved = authors_contextual_loss(feat_x, feat_y, distance_scale=1.0)
    assert np.abs(unhalved / expected - 1).max() > 0.5  # 1 - cos with the same eps is another loss here


def test_contextual_module_applies_the_formula_to_vgg_features(images):
    torch.manual_seed(0)
    loss = ContextualLoss(layer_weights=SHALLOW, pretrained=False)
    output = torch.cat([images['noisy'], images['blurred']])[..., :16, :16]
    target = torch.cat([images['clean'], images['clean'].flip(-1)])[..., :16, :16]
    with torch.no_grad():
        value = loss(output, target).item()
        feat_x, feat_y = (loss.vgg(batch)['relu1_2'].flatten(2) for batch in (output, target))
    assert value == pytest.approx(authors_contextual_loss(feat_x, feat_y).mean(), rel=1e-5)


def test_contextual_loss_stays_finite_with_a_tiny_band_width(images):
    torch.manual_seed(0)
    loss = ContextualLoss(layer_weights=SHALLOW, band_width=1e-4, pretrained=False)
    output = images['noisy'][:1, :, :32, :32].clone().requires_grad_(True)
    value = loss(output, images['clean'][:1, :, :32, :32])
    value.backward()
    assert math.isfinite(value.item()) and value.item() > 0
    assert torch.isfinite(output.grad).all()


def test_contextual_sampling_caps_positions_and_keeps_them_aligned():
    feat_x = torch.randn(2, 4, 50, 50)
    sampled_x, sampled_y = sample_positions(feat_x, 2 * feat_x, max_positions=100)
    assert sampled_x.shape == (2, 4, 100)
    torch.testing.assert_close(sampled_y, 2 * sampled_x)
    small_x, _ = sample_positions(feat_x[..., :5, :5], feat_x[..., :5, :5], max_positions=100)
    assert small_x.shape == (2, 4, 25)


def test_contextual_memory_is_bounded_by_sampling():
    """relu1_1 of 640 x 640 px has 409,600 positions: an unsampled affinity matrix would take 671 GB."""
    torch.manual_seed(0)
    loss = ContextualLoss(layer_weights={'relu1_1': 1.0}, max_positions=1024, pretrained=False)
    image = torch.rand(1, 3, 640, 640)
    baseline = _reset_peak_rss_kib()
    with torch.no_grad():
        value = loss(image, image.flip(-1))
    assert math.isfinite(value.item())
    if baseline is not None:
        assert _peak_rss_kib() - baseline < 1024 ** 2  # under 1 GiB


def _reset_peak_rss_kib():
    """Reset the process's peak resident size (Linux clear_refs); current resident KiB, or None if unsupported."""
    try:
        with open('/proc/self/clear_refs', 'w') as handle:
            handle.write('5')
        return _status_kib('VmRSS')
    except OSError:
        return None


def _peak_rss_kib():
    return _status_kib('VmHWM')


def _status_kib(field):
    with open('/proc/self/status') as handle:
        line = next(line for line in handle if line.startswith(field + ':'))
    return int(line.split()[1])


def test_pdl_channel_distance_equals_scipy_wasserstein():
    generator = torch.Generator().manual_seed(4)
    feat_x, feat_y = torch.randn(1, 3, 6, 7, generator=generator), torch.rand(1, 3, 6, 7, generator=generator)
    expected = np.mean([wasserstein_distance(feat_x[0, c].flatten().numpy(), feat_y[0, c].flatten().numpy())
                        for c in range(3)])
    assert channel_wasserstein_per_image(feat_x, feat_y).item() == pytest.approx(expected, rel=1e-5)


def test_fdl_projections_are_reproducible_from_the_seed(images):
    options = {'layer_weights': {'relu1_2': 1.0, 'relu2_2': 1.0}, 'num_proj': 4, 'pretrained': False}
    torch.manual_seed(10)
    first = FDLLoss(seed=7, **options)
    torch.manual_seed(11)
    second = FDLLoss(seed=7, **options)
    other = FDLLoss(seed=8, **options)
    second.vgg.load_state_dict(first.vgg.state_dict())
    for name in options['layer_weights']:
        assert torch.equal(first.get_buffer(f'projections_{name}'), second.get_buffer(f'projections_{name}'))
        assert not torch.equal(first.get_buffer(f'projections_{name}'), other.get_buffer(f'projections_{name}'))
    pair = images['clean'][:, :, :32, :32], images['blurred'][:, :, :32, :32]
    with torch.no_grad():
        assert first(*pair).item() == second(*pair).item()


@pytest.mark.parametrize('name, size, minimum', [
    ('FDLLoss', 79, 80), ('PDLLoss', 15, 16), ('ContextualLoss', 7, 8), ('LPIPSLoss', 15, 16)])
def test_inputs_too_small_for_the_layers_are_refused(losses, name, size, minimum):
    image = torch.rand(1, 3, size, size)
    with pytest.raises(ValueError, match=f'at least {minimum}x{minimum} px'):
        losses[name](image, image)


@pytest.mark.parametrize('net, minimum', [('vgg', 16), ('alex', 31)])
def test_lpips_minimum_sizes_are_exact(losses, net, minimum):
    loss = losses['LPIPSLoss'] if net == 'vgg' else LPIPSLoss(net='alex', pretrained=False)
    image = torch.rand(1, 3, minimum, minimum)
    assert loss(image, image.flip(-1)).item() > 0
    with pytest.raises(ValueError, match='too small'):
        loss(image[..., 1:, 1:], image[..., 1:, 1:])


@pytest.mark.parametrize('name', LOSS_NAMES)
def test_bad_pairs_are_refused_with_clear_errors(losses, images, name):
    clean = images['clean']
    with pytest.raises(ValueError, match='differ in shape'):
        losses[name](clean, clean[:, :, :-8, :])
    broken = clean.clone()
    broken[0, 1, 3, 4] = float('nan')
    with pytest.raises(ValueError, match='target contains NaN or Inf'):
        losses[name](clean, broken)
    broken[0, 1, 3, 4] = float('inf')
    with pytest.raises(ValueError, match='output contains NaN or Inf'):
        losses[name](broken, clean)
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        losses[name](clean[:, :1], clean[:, :1])
    with pytest.raises(TypeError, match='torch.Tensor'):
        losses[name](clean.numpy(), clean)


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match='relu9_9'):
        PDLLoss(layer_weights={'relu9_9': 1.0}, pretrained=False)
    with pytest.raises(ValueError, match="'squeeze'"):
        LPIPSLoss(net='squeeze', pretrained=False)


@pytest.mark.parametrize('name, cache_name', [
    ('ContextualLoss', 'vgg19-dcbb9e9d.pth'), ('PDLLoss', 'vgg19-dcbb9e9d.pth'),
    ('FDLLoss', 'vgg19-dcbb9e9d.pth'), ('LPIPSLoss', 'vgg16-397923af.pth')])
def test_offline_without_weights_names_the_file_and_the_option(offline_hub, name, cache_name):
    with pytest.raises(FileNotFoundError) as error:
        build_loss({'type': name})
    message = str(error.value)
    assert str(offline_hub / cache_name) in message and 'weights_path' in message


def test_cached_torchvision_weights_load_without_network(offline_hub):
    features = VGG19Features(['relu1_2'], pretrained=False)
    offline_hub.mkdir(parents=True)
    assert expected_cache_file('vgg19') == offline_hub / 'vgg19-dcbb9e9d.pth'
    torch.save(torchvision_style_state_dict(features, 0.5), offline_hub / 'vgg19-dcbb9e9d.pth')
    loss = PDLLoss(layer_weights=SHALLOW)
    assert all(torch.all(param == 0.5) for param in loss.vgg.parameters())


def test_weights_path_loads_a_local_torchvision_file(tmp_path, offline_hub):
    features = VGG19Features(['relu1_2'], pretrained=False)
    path = tmp_path / 'my_vgg19.pth'
    torch.save(torchvision_style_state_dict(features, 0.25), path)
    loss = ContextualLoss(layer_weights=SHALLOW, weights_path=str(path))
    assert all(torch.all(param == 0.25) for param in loss.vgg.parameters())
    with pytest.raises(ValueError, match=r'missing features\.5\.'):
        ContextualLoss(layer_weights={'relu2_1': 1.0}, weights_path=str(path))


def test_lpips_weights_path_fills_the_lpips_trunk(tmp_path, offline_hub):
    trunk = LPIPSLoss(net='alex', pretrained=False).lpips.net
    state = {f"features.{key.split('.', 1)[1]}": torch.full_like(value, 0.125)
             for key, value in trunk.state_dict().items()}
    path = tmp_path / 'alexnet.pth'
    torch.save(state, path)
    loaded = LPIPSLoss(net='alex', weights_path=str(path)).lpips.net
    assert all(torch.all(param == 0.125) for param in loaded.parameters())


def test_weights_path_errors(tmp_path):
    missing = tmp_path / 'absent.pth'
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        FDLLoss(weights_path=str(missing))
    with pytest.raises(ValueError, match='pretrained is false'):
        PDLLoss(pretrained=False, weights_path=str(missing))
