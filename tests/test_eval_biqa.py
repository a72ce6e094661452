"""scripts/eval_biqa.py on miniature datasets: outputs, score directions, NIQE, resumable cache."""
import csv
import json

import cv2
import numpy as np
import pytest
from basicsr.metrics.niqe import calculate_niqe
from scipy import stats

from ddr_basicsr import scoring as score_module
from script_loading import load_script
from test_iqa_datasets import WRITERS, write_tid2013

_BUILT_DDR = {}


@pytest.fixture(scope='module')
def eval_biqa():
    return load_script('eval_biqa')


@pytest.fixture(autouse=True)
def reused_clip(eval_biqa, monkeypatch):
    """Build each DDR configuration once for the whole module (loading CLIP dominates these tests)."""
    original = eval_biqa.build_ddr

    def build_once(*args):
        key = repr(args)
        if key not in _BUILT_DDR:
            _BUILT_DDR[key] = original(*args)
        return _BUILT_DDR[key]

    monkeypatch.setattr(eval_biqa, 'build_ddr', build_once)


@pytest.fixture()
def counted_images(monkeypatch):
    """Number of images that reach the DDR model (ddr_basicsr.score.score_images)."""
    count = []
    original = score_module.score_images

    def counting(ddr, images):
        count.extend([1] * len(images))
        return original(ddr, images)

    monkeypatch.setattr(score_module, 'score_images', counting)
    return count


def _model_args(tiny_clip_path):
    return ['--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', '--batch-size', '2']


def _read_csv(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def test_all_eight_datasets_ddr(eval_biqa, tiny_clip_path, tmp_path, counted_images):
    arguments = []
    for name, writer in WRITERS.items():
        writer(str(tmp_path / name))
        arguments += ['--dataset', f'{name}={tmp_path / name}']
    out = tmp_path / 'out'
    status = eval_biqa.main(arguments + ['--output-dir', str(out), '--metrics', 'ddr', '--spaq-short-side', '40',
                                         '--koniq-resolution', '512x384'] + _model_args(tiny_clip_path))
    assert status == 0
    total = 6 + 3 + 4 + 3 + 3 + 5 + 3 + 4
    assert len(counted_images) == total
    rows = {row['dataset']: row for row in _read_csv(out / 'biqa_results.csv')}
    assert set(rows) == set(WRITERS)
    assert rows['csiq']['paper_srcc'] == '0.8289' and rows['livec']['paper_srcc'] == '0.6613'
    assert rows['koniq10k']['options'] == 'resolution=512x384; score_column=MOS_zscore; short_side=full resolution'
    assert rows['spaq']['options'] == 'short_side=40'
    assert rows['live']['options'].startswith('dmos=realigned')
    assert rows['csiq']['subjective_score'] == 'DMOS (lower is better)'
    for name, row in rows.items():
        per_image = _read_csv(out / f'scores_{name}.csv')
        assert int(row['scored']) == int(row['images']) == len(per_image)
        predicted = [float(item['ddr']) for item in per_image]
        subjective = [float(item[list(item)[1]]) for item in per_image]
        sign = 1 if name not in ('csiq', 'live') else -1  # DDR is higher-better; CSIQ and LIVE give DMOS
        assert float(row['srcc']) == pytest.approx(sign * stats.spearmanr(predicted, subjective)[0], abs=1e-4)
        assert float(row['krcc']) == pytest.approx(sign * stats.kendalltau(predicted, subjective)[0], abs=1e-4)
    markdown = (out / 'biqa_results.md').read_text()
    assert '| csiq | 6/6 |' in markdown and '0.8289' in markdown
    assert 'DDR degradations: color, noise, blur, exposure' in markdown


def test_direction_handling(eval_biqa):
    quality = np.array([1.0, 2.0, 3.0, 4.0])
    dmos = -quality * 10
    csiq_like = type('D', (), {'higher_better': False})()
    assert eval_biqa.direction_sign('ddr', csiq_like) == -1
    assert eval_biqa.correlations(quality, dmos, -1)['srcc'] == pytest.approx(1.0)
    assert eval_biqa.direction_sign('niqe', csiq_like) == 1  # lower-better metric vs lower-better DMOS
    mos_like = type('D', (), {'higher_better': True})()
    assert eval_biqa.direction_sign('niqe', mos_like) == -1
    assert eval_biqa.correlations(-quality, quality, -1)['krcc'] == pytest.approx(1.0)


def test_interrupted_run_resumes_with_only_missing_images(eval_biqa, tiny_clip_path, tmp_path, counted_images):
    WRITERS['kadid10k'](str(tmp_path / 'kadid'))
    WRITERS['csiq'](str(tmp_path / 'csiq'))
    out = tmp_path / 'out'
    argv = ['--dataset', f'kadid10k={tmp_path / "kadid"}', '--dataset', f'csiq={tmp_path / "csiq"}',
            '--output-dir', str(out), '--metrics', 'ddr'] + _model_args(tiny_clip_path)
    assert eval_biqa.main(argv) == 0
    first = (out / 'biqa_results.csv').read_text()
    assert len(counted_images) == 10
    # simulate a run killed during the csiq pass: three records lost and a half-written line
    cache = next((out / 'cache').glob('csiq-ddr-*.jsonl'))
    lines = cache.read_text().splitlines(keepends=True)
    assert json.loads(lines[0])['settings']['dataset'] == 'csiq' and len(lines) == 7
    cache.write_text(''.join(lines[:4]) + '{"image": "dst_imgs/blu')
    counted_images.clear()
    assert eval_biqa.main(argv) == 0
    assert len(counted_images) == 3
    assert (out / 'biqa_results.csv').read_text() == first
    assert all(json.loads(line) for line in cache.read_text().splitlines())  # no partial line left
    counted_images.clear()
    assert eval_biqa.main(argv) == 0 and counted_images == []  # everything cached
    assert eval_biqa.main(argv + ['--degradations', 'blur']) == 0  # other settings: a new cache, all rescored
    assert len(counted_images) == 10
    assert len(list((out / 'cache').glob('csiq-ddr-*.jsonl'))) == 2


def test_niqe_side_by_side_and_failures_reported(eval_biqa, tiny_clip_path, tmp_path, capsys):
    write_tid2013(str(tmp_path / 'tid'), size=(100, 200))
    WRITERS['livec'](str(tmp_path / 'livec'))  # 48x64 images: too small for NIQE
    out = tmp_path / 'out'
    status = eval_biqa.main(['--dataset', f'tid2013={tmp_path / "tid"}', '--dataset', f'livec={tmp_path / "livec"}',
                             '--output-dir', str(out), '--niqe-workers', '0'] + _model_args(tiny_clip_path))
    assert status == 1
    assert 'niqe failed on Images/10.bmp' in capsys.readouterr().err
    rows = {(row['dataset'], row['metric']): row for row in _read_csv(out / 'biqa_results.csv')}
    assert rows[('tid2013', 'niqe')]['scored'] == '3' and rows[('livec', 'niqe')]['scored'] == '0'
    assert rows[('tid2013', 'niqe')]['paper_srcc'] == '0.3106'
    per_image = {row['image']: row for row in _read_csv(out / 'scores_tid2013.csv')}
    bgr = cv2.imread(str(tmp_path / 'tid' / 'distorted_images' / 'i01_02_5.bmp'))
    assert float(per_image['distorted_images/i01_02_5.bmp']['niqe']) == pytest.approx(calculate_niqe(bgr, 0), rel=1e-7)
    assert per_image['distorted_images/i01_02_5.bmp']['ddr'] != ''
    markdown = (out / 'biqa_results.md').read_text()
    assert '| DDR SRCC | DDR SRCC (paper) | DDR PLCC | DDR KRCC | NIQE SRCC | NIQE SRCC (paper) |' in markdown
    assert '| tid2013 | 3/3 |' in markdown and '| livec | 0/3 |' in markdown


def test_bad_dataset_argument(eval_biqa, tmp_path):
    with pytest.raises(SystemExit):
        eval_biqa.main(['--dataset', f'pipal={tmp_path}', '--output-dir', str(tmp_path)])
