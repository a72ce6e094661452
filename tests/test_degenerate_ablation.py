"""Adaptation off with an l1/l2 distance scores every image the same (|F_d - F| = |T_d|): every route that builds
a DDR refuses it with the reason, and the paper's ablation (cosine, adaptation off) still depends on the image."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric

import ddr_basicsr  # noqa: F401  (registers the plugin's losses and metrics)
from ddr_basicsr.cli.score import main as ddr_score
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.host.preflight import resolve_weights

REASON = r'adaptation off \(--no-adaptation\) with the l\d distance scores every image the same'
FIX = 'Use the cosine distance with adaptation off'


def _eval_biqa():
    path = Path(__file__).resolve().parents[1] / 'scripts' / 'eval_biqa.py'
    spec = importlib.util.spec_from_file_location('eval_biqa', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('distance', ['l1', 'l2'])
def test_ddr_refuses_constant_setting(tiny_clip_path, distance):
    with pytest.raises(ValueError, match=REASON) as error:
        DDR(pretrained=tiny_clip_path, adaptation=False, distance=distance, device='cpu')
    assert FIX in str(error.value) and '|F_d - F| = |T_d|' in str(error.value)


def test_paper_ablation_depends_on_the_image(tiny_clip_path):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    scores = DDR(pretrained=tiny_clip_path, adaptation=False, device='cpu').quality(images)
    assert abs(float(scores[0] - scores[1])) > 1e-6
    pixel = DDR(pretrained=tiny_clip_path, domain='pixel', adaptation=False, distance='l1', device='cpu')
    assert pixel.distance == 'l1'  # Eq. 2 has no adaptation step: nothing degenerate there


def test_ddr_loss_and_training_preflight_refuse(tiny_clip_path):
    block = {'type': 'DDRLoss', 'pretrained': tiny_clip_path, 'adaptation': False, 'distance': 'l1'}
    with pytest.raises(ValueError, match=REASON):
        build_loss(dict(block))
    with pytest.raises(ValueError, match=r'train\.ddr_opt \(DDRLoss\) cannot be built: ' + REASON):
        resolve_weights({'train': {'ddr_opt': dict(block)}}, is_train=True)


def test_calculate_ddr_refuses(tiny_clip_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    options = {'type': 'calculate_ddr', 'pretrained': tiny_clip_path, 'device': 'cpu', 'adaptation': False,
               'distance': 'l2'}
    with pytest.raises(ValueError, match=REASON):
        calculate_metric({'img': image}, options)
    with pytest.raises(ValueError, match=r'val\.metrics\.ddr: ' + REASON):
        resolve_weights({'val': {'metrics': {'ddr': options}}}, is_train=False)


def test_command_lines_refuse(tiny_clip_path, tmp_path, capsys):
    image = tmp_path / 'a.png'
    image.write_bytes(b'')
    model = ['--no-adaptation', '--distance', 'l1', '--pretrained', tiny_clip_path, '--device', 'cpu']
    assert ddr_score([str(image), *model]) == 2
    assert capsys.readouterr().err.startswith('ddr-score: error: adaptation off (--no-adaptation) with the l1 ')
    status = _eval_biqa().main(['--dataset', f'csiq={tmp_path}', '--output-dir', str(tmp_path / 'out'),
                                '--metrics', 'ddr', *model])
    err = capsys.readouterr().err
    assert status == 2 and 'eval_biqa.py: error: adaptation off (--no-adaptation) with the l1 distance' in err
