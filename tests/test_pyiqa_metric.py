"""pyiqa.create_metric('ddr') after ``import ddr_basicsr.iqa.pyiqa_metric``: ddr-score's numbers, as_loss, options."""
import importlib
import subprocess
import sys

import pytest
import torch
from PIL import Image

from ddr_basicsr.core.learned_prompts import PromptLearner, describe_backbone, save_prompt_file
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.utils.image_io import read_image
from iqa_examples import ddr_score, write_rgb_photos

pyiqa = pytest.importorskip('pyiqa', reason='pyiqa is an optional extra (pip install "ddr-basicsr[iqa]")')
pyiqa_metric = pytest.importorskip('ddr_basicsr.iqa.pyiqa_metric')


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    return [str(path) for path in write_rgb_photos(tmp_path_factory.mktemp('pyiqa') / 'photos')]


@pytest.fixture(scope='module')
def reference(photos, tiny_clip_path, tmp_path_factory):
    return ddr_score(photos, tiny_clip_path, tmp_path_factory.mktemp('csv') / 'scores.csv')


@pytest.fixture(scope='module')
def metric(tiny_clip_path):
    return pyiqa.create_metric('ddr', pretrained=tiny_clip_path, device='cpu')


def test_registered_in_pyiqa_with_its_conventions(metric):
    assert 'ddr' in pyiqa.list_models(metric_mode='NR') and 'ddr' not in pyiqa.list_models(metric_mode='FR')
    assert metric.metric_mode == 'NR' and metric.lower_better is False
    assert isinstance(metric.net, pyiqa_metric.DDRArch)
    assert metric.net.ddr.degradation_names == tuple(BIQA_DEGRADATIONS)  # ddr-score's default set
    assert metric.net.ddr.cuda_graphs is True and metric.net.ddr.precision == 'fp32'
    config = pyiqa_metric.DEFAULT_CONFIGS['ddr']
    pyiqa_metric.register()  # a second registration changes nothing
    assert pyiqa_metric.DEFAULT_CONFIGS['ddr'] is config
    assert pyiqa_metric.ARCH_REGISTRY.get('DDR') is pyiqa_metric.DDRArch


def test_the_documented_import_is_what_registers():
    code = ('import pyiqa; assert "ddr" not in pyiqa.list_models(); '
            'import ddr_basicsr.iqa.pyiqa_metric; assert "ddr" in pyiqa.list_models(metric_mode="NR")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_paths_pil_images_and_tensors_equal_ddr_score(metric, photos, reference):
    for path in photos:
        expected = reference[path]['ddr']
        assert float(metric(path)) == pytest.approx(expected, abs=1e-6)
        assert float(metric(Image.open(path))) == pytest.approx(expected, abs=1e-6)
        assert float(metric(read_image(path)[None])) == pytest.approx(expected, abs=1e-6)
    same_size = [path for path in photos if read_image(path).shape == (3, 48, 64)]
    batch = torch.stack([read_image(path) for path in same_size])
    scores = metric(batch)
    assert scores.shape == (len(same_size),)
    assert scores.tolist() == pytest.approx([reference[path]['ddr'] for path in same_size], abs=1e-6)


def test_as_loss_gives_a_gradient(tiny_clip_path, photos):
    loss = pyiqa.create_metric('ddr', as_loss=True, pretrained=tiny_clip_path, device='cpu')
    image = read_image(photos[0])[None].requires_grad_(True)
    value = loss(image)
    value.backward()
    assert value.dim() == 0 and value.requires_grad
    assert image.grad is not None and bool(torch.isfinite(image.grad).all()) and float(image.grad.abs().sum()) > 0


def test_options_pass_through_as_ddr_score_takes_them(tiny_clip_path, photos, tmp_path):
    prompts = tmp_path / 'prompts.yml'
    prompts.write_text('haze: [hazy, clear]\n')
    expected = ddr_score(photos, tiny_clip_path, tmp_path / 'haze.csv', '--prompts', str(prompts),
                         '--degradations', 'haze,blur', '--distance', 'l1', '--model', 'ViT-B-32')
    metric = pyiqa.create_metric('ddr', prompts=str(prompts), degradations=['haze', 'blur'], distance='l1',
                                 model='ViT-B-32', pretrained=tiny_clip_path, device='cpu', cuda_graphs=False)
    assert metric.net.ddr.degradation_names == ('haze', 'blur')
    assert metric.net.ddr.cuda_graphs is False and metric.net.ddr.distance == 'l1'
    for path in photos:
        assert float(metric(path)) == pytest.approx(expected[path]['ddr'], abs=1e-6)


def test_a_tuned_prompt_file_passes_through(tiny_clip_path, photos, tmp_path):
    plain = pyiqa.create_metric('ddr', pretrained=tiny_clip_path, device='cpu').net.ddr
    learner = PromptLearner(plain.clip, plain.tokenizer, plain.prompts)
    with torch.no_grad():
        learner.context.add_(0.05 * torch.randn(learner.context.shape, generator=torch.Generator().manual_seed(0)))
    tuned = tmp_path / 'prompts.pt'
    save_prompt_file(str(tuned), learner, plain.prompts, describe_backbone(plain.clip, plain.clip_description), {})
    expected = ddr_score(photos, tiny_clip_path, tmp_path / 'tuned.csv', '--prompts', str(tuned))
    metric = pyiqa.create_metric('ddr', prompts=str(tuned), pretrained=tiny_clip_path, device='cpu')
    assert metric.net.ddr.learned_prompts is not None
    for path in photos:
        assert float(metric(path)) == pytest.approx(expected[path]['ddr'], abs=1e-6)
    assert abs(float(metric(photos[0])) - float(plain.quality(photos[0]))) > 1e-6  # the tuned vectors count


def test_unknown_options_are_clear_errors(tiny_clip_path):
    with pytest.raises(TypeError, match=r"Unknown option\(s\) 'degradation' \(did you mean 'degradations'\?\) "
                                        r"for metric 'ddr'\. Options: degradations, prompts"):
        pyiqa.create_metric('ddr', degradation='blur', pretrained=tiny_clip_path, device='cpu')
    with pytest.raises(ValueError, match="unknown degradation 'haze'; valid names"):
        pyiqa.create_metric('ddr', degradations='haze', pretrained=tiny_clip_path, device='cpu')


def test_without_pyiqa_the_import_says_how_to_install(monkeypatch):
    for name in ('pyiqa', 'pyiqa.default_model_configs', 'pyiqa.utils.registry'):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, 'ddr_basicsr.iqa.pyiqa_metric')
    with pytest.raises(ImportError, match=r'needs pyiqa .*pip install "ddr-basicsr\[iqa\]" \(pyiqa\'s licence is non'):
        importlib.import_module('ddr_basicsr.iqa.pyiqa_metric')
