"""The torchmetrics DDRQuality: one process and two gloo processes give one ddr-score run's numbers (CPU)."""
import importlib
import json
import os
import socket
import sys
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ddr_basicsr.utils.image_io import read_image
from iqa_examples import ddr_score, write_rgb_photos

pytest.importorskip('torchmetrics', reason='torchmetrics is an optional extra (pip install "ddr-basicsr[iqa]")')
from ddr_basicsr.iqa.torchmetrics_metric import DDRQuality

WORLD_SIZE = 2
TIMEOUT_S = 240


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    return [str(path) for path in write_rgb_photos(tmp_path_factory.mktemp('torchmetrics') / 'photos')]


@pytest.fixture(scope='module')
def reference(photos, tiny_clip_path, tmp_path_factory):
    rows = ddr_score(photos, tiny_clip_path, tmp_path_factory.mktemp('csv') / 'scores.csv')
    return [rows[path]['ddr'] for path in photos]


def _mean(values) -> float:
    return sum(values) / len(values)


def test_one_process_mean_and_per_image_scores(photos, reference, tiny_clip_path):
    metric = DDRQuality(pretrained=tiny_clip_path)
    metric.update(torch.stack([read_image(photos[0]), read_image(photos[3])]))  # a (B, 3, H, W) batch of 48x64
    metric.update([photos[1], photos[2], photos[4]])  # files
    assert float(metric.compute()) == pytest.approx(_mean(reference), abs=1e-6)
    per_image = DDRQuality(per_image=True, ddr=metric.ddr)
    for path in photos:
        per_image.update([read_image(path)])
    mean, scores = per_image.compute()
    assert scores.tolist() == pytest.approx(reference, abs=1e-6)
    assert float(mean) == pytest.approx(_mean(reference), abs=1e-6)
    per_image.reset()
    with pytest.warns(UserWarning, match='called before the ``update``'), \
            pytest.raises(ValueError, match=r'compute\(\) before any update\(images\)'):
        per_image.compute()


def test_unknown_options_are_refused_before_clip_loads():
    with pytest.raises(ValueError, match='Unexpected keyword arguments: `degradation`'):
        DDRQuality(degradation='blur', pretrained='/nonexistent.pt')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _score_share(rank: int, port: int, photos, tiny_clip_path: str, folder: str) -> None:
    """One gloo process: score every other photo, compute (synced), write the result to ``folder``."""
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=WORLD_SIZE,
                            timeout=timedelta(seconds=TIMEOUT_S))
    try:
        metric = DDRQuality(per_image=True, pretrained=tiny_clip_path)
        metric.update(photos[rank::WORLD_SIZE])
        mean, scores = metric.compute()
        with open(os.path.join(folder, f'rank{rank}.json'), 'w', encoding='utf-8') as handle:
            json.dump({'mean': float(mean), 'scores': scores.tolist()}, handle)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_ddr_score_run(photos, reference, tiny_clip_path, tmp_path):
    context = mp.start_processes(_score_share, args=(_free_port(), photos, tiny_clip_path, str(tmp_path)),
                                 nprocs=WORLD_SIZE, join=False, start_method='spawn')
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):  # True once all have ended
            assert time.monotonic() < deadline, f'the {WORLD_SIZE} processes did not end within {TIMEOUT_S} s'
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    in_rank_order = [score for rank in range(WORLD_SIZE) for score in reference[rank::WORLD_SIZE]]
    for rank in range(WORLD_SIZE):
        result = json.loads((tmp_path / f'rank{rank}.json').read_text(encoding='utf-8'))
        assert result['mean'] == pytest.approx(_mean(reference), abs=1e-6)
        assert result['scores'] == pytest.approx(in_rank_order, abs=1e-6)


def test_without_torchmetrics_the_import_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torchmetrics', None)
    monkeypatch.delitem(sys.modules, 'ddr_basicsr.iqa.torchmetrics_metric')
    with pytest.raises(ImportError, match=r'DDRQuality needs torchmetrics .*pip install "ddr-basicsr\[iqa\]"'):
        importlib.import_module('ddr_basicsr.iqa.torchmetrics_metric')
