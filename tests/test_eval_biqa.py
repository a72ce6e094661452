"""ddr_basicsr.iqa.evaluation on miniature datasets (scripts/eval_biqa.py run as a user would for its exit
status and messages): outputs, score directions, NIQE, resumable cache."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from basicsr.metrics.niqe import calculate_niqe
from scipy import stats

from ddr_basicsr.iqa import evaluation
from ddr_basicsr.iqa import scoring as score_module
from test_iqa_datasets import WRITERS, write_tid2013

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'eval_biqa.py'
_BUILT_DDR = {}


def _ddr_factory(tiny_clip_path, degradations=None):
    """The DDR scripts/eval_biqa.py builds for the options of ``_model_args`` (and ``--degradations``); each
    configuration is built once for the whole module (loading CLIP dominates these tests)."""
    def build():
        key = (tiny_clip_path, degradations)
        if key not in _BUILT_DDR:
            _BUILT_DDR[key] = score_module.build_ddr('ViT-B-32', tiny_clip_path, degradations, None, 'cpu', 'fp32')
        return _BUILT_DDR[key]
    return build


def _evaluate(datasets, out, tiny_clip_path, degradations=None, **options):
    """What ``eval_biqa.py --dataset NAME=ROOT ... --output-dir OUT`` + ``_model_args`` does; the failures."""
    rows, failures, settings = evaluation.evaluate([(name, str(root)) for name, root in datasets], str(out),
                                                   ddr_factory=_ddr_factory(tiny_clip_path, degradations),
                                                   batch_size=2, workers=0, **options)
    evaluation.write_reports(str(out), rows, settings)
    return failures


def _run_script(*arguments):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)], capture_output=True, text=True,
                          timeout=600)


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


def test_all_eight_datasets_ddr(tiny_clip_path, tmp_path, counted_images):
    for name, writer in WRITERS.items():
        writer(str(tmp_path / name))
    out = tmp_path / 'out'
    failures = _evaluate([(name, tmp_path / name) for name in WRITERS], out, tiny_clip_path, metrics=['ddr'],
                         spaq_short_side=40, koniq_resolution='512x384')
    assert failures == []
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


def test_direction_handling():
    quality = np.array([1.0, 2.0, 3.0, 4.0])
    dmos = -quality * 10
    csiq_like = type('D', (), {'higher_better': False})()
    assert evaluation.direction_sign('ddr', csiq_like) == -1
    assert evaluation.correlations(quality, dmos, -1)['srcc'] == pytest.approx(1.0)
    assert evaluation.direction_sign('niqe', csiq_like) == 1  # lower-better metric vs lower-better DMOS
    mos_like = type('D', (), {'higher_better': True})()
    assert evaluation.direction_sign('niqe', mos_like) == -1
    assert evaluation.correlations(-quality, quality, -1)['krcc'] == pytest.approx(1.0)


def test_interrupted_run_resumes_with_only_missing_images(tiny_clip_path, tmp_path, counted_images):
    WRITERS['kadid10k'](str(tmp_path / 'kadid'))
    WRITERS['csiq'](str(tmp_path / 'csiq'))
    out = tmp_path / 'out'
    datasets = [('kadid10k', tmp_path / 'kadid'), ('csiq', tmp_path / 'csiq')]
    assert _evaluate(datasets, out, tiny_clip_path, metrics=['ddr']) == []
    first = (out / 'biqa_results.csv').read_text()
    assert len(counted_images) == 10
    # simulate a run killed during the csiq pass: three records lost and a half-written line
    cache = next((out / 'cache').glob('csiq-ddr-*.jsonl'))
    lines = cache.read_text().splitlines(keepends=True)
    assert json.loads(lines[0])['settings']['dataset'] == 'csiq' and len(lines) == 7
    cache.write_text(''.join(lines[:4]) + '{"image": "dst_imgs/blu')
    counted_images.clear()
    assert _evaluate(datasets, out, tiny_clip_path, metrics=['ddr']) == []
    assert len(counted_images) == 3
    assert (out / 'biqa_results.csv').read_text() == first
    assert all(json.loads(line) for line in cache.read_text().splitlines())  # no partial line left
    counted_images.clear()
    assert _evaluate(datasets, out, tiny_clip_path, metrics=['ddr']) == [] and counted_images == []  # all cached
    # other settings: a new cache, all rescored
    assert _evaluate(datasets, out, tiny_clip_path, degradations='blur', metrics=['ddr']) == []
    assert len(counted_images) == 10
    assert len(list((out / 'cache').glob('csiq-ddr-*.jsonl'))) == 2


def test_niqe_side_by_side_and_failures_reported(tiny_clip_path, tmp_path):
    write_tid2013(str(tmp_path / 'tid'), size=(100, 200))
    WRITERS['livec'](str(tmp_path / 'livec'))  # 48x64 images: too small for NIQE
    out = tmp_path / 'out'
    failures = _evaluate([('tid2013', tmp_path / 'tid'), ('livec', tmp_path / 'livec')], out, tiny_clip_path,
                         metrics=['ddr', 'niqe'], niqe_workers=0)
    assert {(failure.metric, failure.image) for failure in failures} >= {('niqe', 'Images/10.bmp')}
    assert all(failure.metric == 'niqe' for failure in failures)
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


def test_bad_dataset_argument(tmp_path):
    run = _run_script('--dataset', f'pipal={tmp_path}', '--output-dir', tmp_path)
    assert run.returncode == 2  # argparse's usage error (SystemExit)
    assert 'expected NAME=ROOT' in run.stderr
