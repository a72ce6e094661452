"""The ``ddr-score`` command and its batched scoring engine (tiny random CLIP, CPU)."""
import argparse
import csv
import importlib.util
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr.cli.score import main
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.iqa import scoring as score_module
from ddr_basicsr.iqa.scoring import iter_quality_scores, stack_by_size
from ddr_basicsr.tools.benchmarking import add_biqa_arguments, biqa_benchmark
from ddr_basicsr.utils.image_files import collect_inputs
from ddr_basicsr.utils.image_io import read_image


@pytest.fixture(scope='module')
def tiny_ddr(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')


@pytest.fixture()
def image_folder(tmp_path):
    """Five images of three sizes (one grey, one 16-bit) and a corrupt file, in a folder."""
    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(48, 64), (48, 64), (64, 48), (48, 64)]):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f'img{index}.png'), image)
    assert cv2.imwrite(str(folder / 'grey.jpg'), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    assert cv2.imwrite(str(folder / 'deep.tif'), rng.integers(0, 65536, (48, 64, 3), dtype=np.uint16))
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.fixture()
def score_calls(monkeypatch):
    """Sizes of the batches the engine passes to ``score_images``, in call order."""
    calls = []
    original = score_module.score_images

    def counting(ddr, images):
        calls.append(len(images))
        return original(ddr, images)

    monkeypatch.setattr(score_module, 'score_images', counting)
    return calls


def _read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def _expected(ddr, path):
    responses = ddr.quality_responses(read_image(str(path))[None])
    return {name: float(value[0]) for name, value in responses.items()}


def test_cli_scores_a_folder_reports_the_broken_file_and_exits_1(tiny_clip_path, tiny_ddr, image_folder, tmp_path):
    output = tmp_path / 'out' / 'scores.csv'
    status = main([str(image_folder), '--output', str(output), '--pretrained', tiny_clip_path, '--device', 'cpu',
                   '--workers', '0', '--batch-size', '2', '--no-progress'])
    assert status == 1
    rows = _read_csv(output.read_text())
    assert list(rows[0]) == ['path', 'ddr', 'color', 'noise', 'blur', 'exposure', 'error']
    names = [os.path.basename(row['path']) for row in rows]
    assert names == ['broken.png', 'deep.tif', 'grey.jpg', 'img0.png', 'img1.png', 'img2.png', 'img3.png']
    broken = rows[0]
    assert broken['ddr'] == '' and 'cannot decode' in broken['error']
    for row in rows[1:]:
        expected = _expected(tiny_ddr, row['path'])
        assert row['error'] == ''
        for name, value in expected.items():
            assert float(row[name]) == pytest.approx(value, abs=1e-6)
        assert float(row['ddr']) == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    assert sorted(os.listdir(output.parent)) == ['scores.csv', 'scores.csv.settings.json']  # no temp file or shard
    settings = json.loads((output.parent / 'scores.csv.settings.json').read_text())
    assert settings['adaptation'] is True and settings['distance'] == 'cosine'
    assert settings['columns'] == ['color', 'noise', 'blur', 'exposure'] and settings['max_pixels'] == 100_000_000


def test_cli_stdout_globs_degradations_and_custom_prompts(tiny_clip_path, tiny_ddr, image_folder, tmp_path, capsys):
    prompts = tmp_path / 'prompts.yml'
    prompts.write_text('haze: [hazy, clear]\nblur: ["A blurry photo.", "A sharp photo."]\n')
    status = main([str(image_folder / 'img*.png'), str(image_folder / 'grey.jpg'), '--prompts', str(prompts),
                   '--degradations', 'haze,noise', '--pretrained', tiny_clip_path, '--device', 'cpu',
                   '--workers', '0', '--no-progress'])
    assert status == 0
    rows = _read_csv(capsys.readouterr().out)
    assert list(rows[0]) == ['path', 'ddr', 'haze', 'noise', 'error']
    assert len(rows) == 5 and os.path.basename(rows[-1]['path']) == 'grey.jpg'
    custom = DDR(pretrained=tiny_clip_path, degradations=['haze', 'noise'], prompts={'haze': ('hazy', 'clear')},
                 device='cpu')
    expected = _expected(custom, rows[-1]['path'])
    assert float(rows[-1]['haze']) == pytest.approx(expected['haze'], abs=1e-6)
    assert float(rows[-1]['noise']) == pytest.approx(_expected(tiny_ddr, rows[-1]['path'])['noise'], abs=1e-6)


def test_cli_missing_inputs_are_reported_rows(tiny_clip_path, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    status = main([str(tmp_path / 'none*.png'), str(tmp_path / 'missing.png'), str(empty), '--pretrained',
                   tiny_clip_path, '--device', 'cpu', '--workers', '0', '--no-progress'])
    captured = capsys.readouterr()
    assert status == 1
    errors = [row['error'] for row in _read_csv(captured.out)]
    assert errors[0] == 'no file matches this pattern'
    assert 'not found' in errors[1]
    assert errors[2].startswith('no image file in this folder')
    assert 'missing.png' in captured.err


def test_cli_bad_degradation_exits_2(tiny_clip_path, image_folder, capsys):
    status = main([str(image_folder), '--degradations', 'fog', '--pretrained', tiny_clip_path, '--device', 'cpu'])
    assert status == 2
    assert "unknown degradation 'fog'" in capsys.readouterr().err


def test_collect_inputs_recursive(image_folder):
    nested = image_folder / 'sub'
    nested.mkdir()
    assert cv2.imwrite(str(nested / 'x.bmp'), np.zeros((20, 20, 3), np.uint8))
    flat = [os.path.basename(path) for path, _ in collect_inputs([str(image_folder)])]
    deep = [os.path.basename(path) for path, _ in collect_inputs([str(image_folder)], recursive=True)]
    assert 'x.bmp' not in flat and 'x.bmp' in deep and 'notes.txt' not in deep


def test_engine_batches_and_worker_processes_agree(tiny_ddr, image_folder, score_calls):
    paths = sorted(str(path) for path in image_folder.glob('*') if path.suffix != '.txt')
    batched = {r.path: r for r in iter_quality_scores(tiny_ddr, paths, batch_size=8, workers=1, progress=False)}
    assert sorted(score_calls) == [1, 1, 4]  # the four 48x64 images (8- and 16-bit) in one call; 64x48, 40x40 alone
    score_calls.clear()
    single = {r.path: r for r in iter_quality_scores(tiny_ddr, paths, batch_size=1, workers=0, progress=False)}
    assert score_calls == [1] * 6
    assert set(batched) == set(single) == set(paths)
    for path in paths:
        assert batched[path].error == single[path].error
        if not batched[path].error:
            assert batched[path].quality == pytest.approx(single[path].quality, abs=1e-6)


def test_workers_send_images_stacked_by_size_and_dtype():
    small, wide = torch.zeros(3, 4, 6, dtype=torch.uint8), torch.ones(3, 6, 4, dtype=torch.uint8)
    failures, stacks = stack_by_size([(0, small, ''), (1, None, 'corrupt'), (2, wide, ''), (3, small + 1, ''),
                                      (4, small.float(), '')])
    assert failures == [(1, 'corrupt')]
    assert [(indices, tuple(stack.shape), stack.dtype) for indices, stack in stacks] == [
        ([0, 3], (2, 3, 4, 6), torch.uint8), ([2], (1, 3, 6, 4), torch.uint8), ([4], (1, 3, 4, 6), torch.float32)]
    assert torch.equal(stacks[0][1][1], small + 1)


def test_engine_batches_never_exceed_batch_size_across_chunks(tiny_ddr, image_folder, score_calls):
    paths = sorted(str(path) for path in image_folder.glob('*') if path.suffix != '.txt') * 3
    results = list(iter_quality_scores(tiny_ddr, paths, batch_size=3, workers=2, progress=False))
    assert len(results) == 21 and sum(1 for result in results if result.error) == 3
    assert max(score_calls) == 3 and sum(score_calls) == 18


def test_images_too_small_for_ddr_fail_alone(tiny_ddr, tmp_path):
    assert cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((8, 8, 3), np.uint8))
    assert cv2.imwrite(str(tmp_path / 'ok.png'), np.full((32, 32, 3), 128, np.uint8))
    results = {os.path.basename(r.path): r for r in iter_quality_scores(
        tiny_ddr, [str(tmp_path / 'small.png'), str(tmp_path / 'ok.png')], workers=0, progress=False)}
    assert 'too small' in results['small.png'].error and results['small.png'].quality is None
    assert results['ok.png'].error == '' and np.isfinite(results['ok.png'].quality)


def test_score_images_accepts_uint8(tiny_ddr):
    image = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    responses = score_module.score_images(tiny_ddr, [image])
    expected = tiny_ddr.quality_responses(image[None].float() / 255)
    for name in expected:
        torch.testing.assert_close(responses[name], expected[name])


def test_biqa_benchmark_smoke(tiny_clip_path):
    parser = argparse.ArgumentParser()
    add_biqa_arguments(parser)
    lines = list(biqa_benchmark(parser.parse_args([
        '--num-images', '4', '--size', '96x64', '--batch-size', '2', '--workers', '0', '--warmup', '1',
        '--check-images', '1', '--pretrained', tiny_clip_path, '--device', 'cpu'])))
    assert lines[1].startswith('images: 4 JPEGs 96x64')
    assert float(lines[2].split()[2]) > 0 and float(lines[3].split()[2]) > 0
    assert lines[4].startswith('max |score - float32 one-at-a-time score| over 1 images')
    assert float(lines[4].split()[-1]) < 1e-5


def test_cli_weight_errors_name_the_command_line_fix(image_folder, tmp_path, capsys):
    status = main([str(image_folder), '--pretrained', str(tmp_path / 'absent.pt'), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith('ddr-score: error: CLIP weights ')
    assert 'pass its path: --pretrained /path/to/ViT-B-32.pt' in err and 'DDR(pretrained=' not in err


def test_cli_prompt_errors_name_the_prompts_file(image_folder, tmp_path, tiny_clip_path, capsys):
    prompts = tmp_path / 'prompts.yml'
    prompts.write_text('haze: [hazy]\n')
    status = main([str(image_folder), '--prompts', str(prompts), '--pretrained', tiny_clip_path, '--device', 'cpu'])
    assert status == 2 and capsys.readouterr().err.startswith(f'ddr-score: error: --prompts {prompts}: ')


def _script_parser(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def test_no_adaptation_and_distance_reach_ddr_and_are_recorded(tiny_clip_path, tiny_ddr, image_folder, tmp_path):
    output = tmp_path / 'scores.csv'
    assert main([str(image_folder / 'img0.png'), '-o', str(output), '--no-adaptation',
                 '--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', '--no-progress']) == 0
    row = _read_csv(output.read_text())[0]
    ablation = DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu', adaptation=False)
    image = read_image(row['path'])[None]
    assert float(row['ddr']) == pytest.approx(float(ablation.quality(image)), abs=1e-6)
    assert abs(float(row['ddr']) - float(tiny_ddr.quality(image))) > 1e-3  # not the paper's cosine with Eq. 4
    settings = json.loads((tmp_path / 'scores.csv.settings.json').read_text())
    assert settings['adaptation'] is False and settings['distance'] == 'cosine'
    eval_args = _script_parser('eval_biqa').parse_args(['--dataset', 'csiq=x', '--output-dir', 'o', '--no-adaptation',
                                                        '--distance', 'l2'])
    assert eval_args.adaptation is False and eval_args.distance == 'l2'
    assert _script_parser('eval_biqa').parse_args(['--dataset', 'csiq=x', '--output-dir', 'o']).adaptation is True
