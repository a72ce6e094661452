"""``calculate_ddr`` / ``calculate_ddr_pt`` through BasicSR's METRIC_REGISTRY and calculate_metric."""
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

import ddr_basicsr  # noqa: F401  (registers the plugin's metrics)
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.metrics import ddr_metric


@pytest.fixture()
def metric_opt(tiny_clip_path):
    return {'type': 'calculate_ddr', 'better': 'higher', 'pretrained': tiny_clip_path, 'device': 'cpu'}


@pytest.fixture(scope='module')
def reference_ddr(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=('color', 'noise', 'blur', 'exposure'), device='cpu')


def _bgr_image(seed=0, shape=(40, 56, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_registered_and_matches_ddr_quality_on_rgb(metric_opt, reference_ddr):
    assert METRIC_REGISTRY.get('calculate_ddr') is ddr_metric.calculate_ddr
    bgr = _bgr_image()
    value = calculate_metric({'img': bgr, 'img2': _bgr_image(1)}, metric_opt)
    rgb = torch.from_numpy(bgr[:, :, ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    assert isinstance(value, float)
    assert value == pytest.approx(float(reference_ddr.quality(rgb)[0]), abs=1e-6)
    swapped = calculate_metric({'img': np.ascontiguousarray(bgr[:, :, ::-1])}, metric_opt)
    assert swapped != pytest.approx(value, abs=1e-7)  # channel order matters: BGR input is converted


def test_chw_grey_and_float_inputs(metric_opt):
    bgr = _bgr_image(2)
    hwc = ddr_metric.calculate_ddr(bgr, **metric_opt)
    assert ddr_metric.calculate_ddr(bgr.transpose(2, 0, 1), input_order='CHW', **metric_opt) == pytest.approx(hwc)
    assert ddr_metric.calculate_ddr(bgr.astype(np.float32), **metric_opt) == pytest.approx(hwc, abs=1e-6)
    grey = bgr[:, :, 0]
    assert ddr_metric.calculate_ddr(grey, **metric_opt) == pytest.approx(
        ddr_metric.calculate_ddr(np.repeat(grey[:, :, None], 3, axis=2), **metric_opt), abs=1e-7)


def test_clip_is_built_once_per_options(metric_opt, monkeypatch):
    built = []
    monkeypatch.setattr(ddr_metric, '_DDR_MODELS', {})
    original = ddr_metric.DDR

    def counting_ddr(**kwargs):
        built.append(kwargs['degradations'])
        return original(**kwargs)

    monkeypatch.setattr(ddr_metric, 'DDR', counting_ddr)
    for seed in range(3):
        calculate_metric({'img': _bgr_image(seed)}, metric_opt)
    assert len(built) == 1
    calculate_metric({'img': _bgr_image()}, dict(metric_opt, degradations=['blur']))
    calculate_metric({'img': _bgr_image()}, dict(metric_opt, degradations=['blur']))
    assert built == [('color', 'noise', 'blur', 'exposure'), ['blur']]


def test_pt_variant_scores_each_image(metric_opt, reference_ddr):
    images = torch.rand(3, 3, 32, 48)
    scores = calculate_metric({'img': images, 'img2': images}, dict(metric_opt, type='calculate_ddr_pt'))
    assert scores.shape == (3,)
    torch.testing.assert_close(scores, reference_ddr.quality(images))


def test_bad_inputs(metric_opt):
    with pytest.raises(TypeError, match='calculate_ddr_pt'):
        ddr_metric.calculate_ddr(torch.zeros(3, 32, 32), **metric_opt)
    with pytest.raises(ValueError, match='input_order'):
        ddr_metric.calculate_ddr(_bgr_image(), input_order='NCHW', **metric_opt)
    with pytest.raises(ValueError, match='channels'):
        ddr_metric.calculate_ddr(_bgr_image(shape=(32, 32, 4)), **metric_opt)
