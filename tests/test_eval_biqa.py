"""ddr_basicsr.iqa.evaluation on miniature datasets (scripts/eval_biqa.py run as a user would for its exit
status and messages): outputs, score directions, NIQE, resumable cache."""
import csv
import glob
import importlib.util
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics.niqe import calculate_niqe
from scipy import stats

from ddr_basicsr.iqa import evaluation
from ddr_basicsr.iqa import scoring as score_module
from ddr_basicsr.utils.worker_pools import worker_executor
from test_iqa_datasets import WRITERS, write_tid2013


def load_script(name):
    """``scripts/<name>.py`` as a module (scripts/ is not a package), to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_biqa = load_script('eval_biqa')
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


@pytest.fixture()
def counted_images(monkeypatch):
    """Number of images that reach the DDR model (ddr_basicsr.cli.score.score_images)."""
    count = []
    original = score_module.score_images

    def counting(ddr, images):
        count.extend([1] * len(images))
        return original(ddr, images)

    monkeypatch.setattr(score_module, 'score_images', counting)
    return count


def _model_args(tiny_clip_path, workers=0):
    return ['--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', str(workers), '--batch-size', '2']


class Deadlock(Exception):
    """Raised by :func:`fails_instead_of_hanging` (not an OSError, which the scripts report as bad input)."""


@contextmanager
def fails_instead_of_hanging(seconds):
    """Raise :class:`Deadlock` in the test after ``seconds`` (SIGALRM) and kill this process's children, so a
    deadlocked worker pool fails the test instead of hanging the suite."""
    def on_alarm(signum, frame):
        for stat in glob.glob('/proc/[0-9]*/stat'):
            try:
                with open(stat) as handle:
                    parent = int(handle.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == os.getpid():
                os.kill(int(stat.split('/')[2]), signal.SIGKILL)
        raise Deadlock(f'still running after {seconds} s: a worker pool deadlocked')

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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
    assert rows['csiq']['subjective_score'] == 'DMOS (lower is better; column dmos of csiq.DMOS.xlsx, 0-1 scale)'
    assert rows['koniq10k']['subjective_score'] == ('MOS_zscore (higher is better; column MOS_zscore of '
                                                    'koniq10k_scores_and_distributions.csv, 1-100 scale)')
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


def test_bad_dataset_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:  # argparse's usage error
        eval_biqa.main(['--dataset', f'pipal={tmp_path}', '--output-dir', str(tmp_path)])
    assert exit_status.value.code == 2
    assert 'expected NAME=ROOT' in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, 'SIGALRM') or not os.path.isdir('/proc'),
                    reason='the hang guard needs SIGALRM and /proc (Linux)')
def test_worker_pools_do_not_deadlock_after_torch_ran(tiny_clip_path, tmp_path, capsys):
    """eval_biqa.py with its default metrics, DDR decoding in 2 DataLoader workers and NIQE in 2 worker
    processes, on 256x192 images, after torch ran on 2 threads: NIQE workers forked from that process used
    to wait forever in GNU OpenMP ("NIQE 0/3")."""
    expected = dict(write_tid2013(str(tmp_path / 'tid'), size=(192, 256)))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the hang needs an OpenMP team of 2+ threads in this process
    try:
        torch.rand(1 << 22).exp_()  # starts the team (a parallel element-wise kernel)
        with fails_instead_of_hanging(180):
            status = eval_biqa.main(['--dataset', f'tid2013={tmp_path / "tid"}', '--output-dir', str(tmp_path / 'out'),
                                     '--niqe-workers', '2', *_model_args(tiny_clip_path, workers=2)])
            with worker_executor(1) as pool:
                worker_threads = pool.submit(torch.get_num_threads).result()
    finally:
        torch.set_num_threads(threads)
    assert status == 0, capsys.readouterr().err
    assert worker_threads == 1
    per_image = {row['image']: row for row in _read_csv(tmp_path / 'out' / 'scores_tid2013.csv')}
    assert set(per_image) == set(expected)
    bgr = cv2.imread(str(tmp_path / 'tid' / 'distorted_images' / 'i25_24_3.bmp'))
    assert float(per_image['distorted_images/i25_24_3.bmp']['niqe']) == pytest.approx(calculate_niqe(bgr, 0), rel=1e-7)
    assert all(row['ddr'] for row in per_image.values())
