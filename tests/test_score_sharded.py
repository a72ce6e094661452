"""``ddr-score`` at scale (issue 16): deterministic shares, shards merged in input order, resume after a crash,
``--files-from``, and one real two-process gloo run under torchrun (tiny random CLIP, 32 px images, CPU)."""
import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr.cli.arguments import ddr_from_arguments
from ddr_basicsr.cli.score import main
from ddr_basicsr.iqa import scoring, shards
from ddr_basicsr.iqa.scoring import format_csv
from ddr_basicsr.utils.image_files import collect_inputs
from tiny_training import subprocess_env

#: One image per encoder call: a score then does not depend on which images share its batch (the matrix kernels
#: round differently for different batch sizes), so runs split differently give the same bytes.
BATCH = ['--batch-size', '1', '--workers', '0', '--device', 'cpu', '--no-progress']
SIZES = [(32, 32), (32, 40), (40, 32), (32, 32), (36, 32)]


_BUILT_DDR = {}


@pytest.fixture(scope='module', autouse=True)
def ddr_built_once():
    """``ddr-score`` builds each model configuration once for the module (loading CLIP dominates these tests)."""
    def build(args):
        key = (args.pretrained, args.adaptation, args.distance, args.device)
        if key not in _BUILT_DDR:
            _BUILT_DDR[key] = ddr_from_arguments(args)
        return _BUILT_DDR[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr('ddr_basicsr.cli.score.ddr_from_arguments', build)
        yield


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate(SIZES):
        assert cv2.imwrite(str(folder / f'im{index}.png'), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope='module')
def reference_csv(photos, tiny_clip_path, tmp_path_factory):
    """The CSV of an uninterrupted one-process run."""
    output = tmp_path_factory.mktemp('reference') / 'scores.csv'
    assert main([str(photos), '-o', str(output), '--pretrained', tiny_clip_path, *BATCH]) == 0
    assert sorted(os.listdir(output.parent)) == ['scores.csv', 'scores.csv.settings.json']
    return output.read_bytes()


@pytest.fixture()
def score_calls(monkeypatch):
    """Images scored by the engine, counted; ``score_calls.die_after = k`` makes the process SIGKILL itself at the
    k+1-th call."""
    original = scoring.score_images

    def counting(ddr, images):
        if counting.die_after is not None and counting.count >= counting.die_after:
            os.kill(os.getpid(), signal.SIGKILL)
        counting.count += len(images)
        return original(ddr, images)

    counting.count, counting.die_after = 0, None
    monkeypatch.setattr(scoring, 'score_images', counting)
    return counting


def test_two_shares_merge_to_the_one_process_csv(photos, tiny_clip_path, reference_csv, tmp_path):
    ddr = next(iter(_BUILT_DDR.values()))  # the reference run's
    options = {'batch_size': 1, 'workers': 0}
    folder = shards.shards_folder(str(tmp_path / 'scores.csv'))
    rows = collect_inputs([str(photos)])
    shards.prepare_shards(folder, rows, shards.run_settings(ddr, options))
    for rank in (1, 0):
        assert shards.score_shard(ddr, folder, shards.Launch(rank, 2), options) == (2 if rank else 3)
    shard_paths = [[json.loads(line)['path'] for line in open(os.path.join(folder, shards.shard_name(
        shards.Launch(rank, 2))))] for rank in (0, 1)]
    assert shard_paths == [[rows[0][0], rows[2][0], rows[4][0]], [rows[1][0], rows[3][0]]]  # every other image
    merged = format_csv(shards.merge_shards(folder), ddr.degradation_names)
    assert merged.encode() == reference_csv


def test_a_killed_run_resumes_to_the_uninterrupted_csv(photos, tiny_clip_path, reference_csv, tmp_path, capsys,
                                                      score_calls):
    output = tmp_path / 'scores.csv'
    command = [str(photos), '-o', str(output), '--pretrained', tiny_clip_path, *BATCH]
    score_calls.die_after = 2
    child = os.fork()  # the test process runs torch with one thread, so the child may use it
    if child == 0:
        try:
            main(command)
        finally:
            os._exit(3)  # only reached if the kill did not happen
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    folder = tmp_path / 'scores.csv.shards'
    assert not output.exists() and sorted(os.listdir(folder)) == [
        'carried.jsonl', 'lock', 'plan.json', 'rank-00000-of-00001.partial.jsonl']
    partial = folder / 'rank-00000-of-00001.partial.jsonl'
    assert len(partial.read_text().splitlines()) == 2
    with open(partial, 'a') as stream:
        stream.write('{"path": "' + str(photos / 'im2.png'))  # a record cut short by the kill

    assert main([*command, '--no-adaptation']) == 2  # the shards were scored with adaptation
    assert capsys.readouterr().err == (f'ddr-score: error: --output {output}: {folder} holds the scores of a run with '
                                       'other settings (adaptation); rerun with the same options to resume it, or '
                                       'delete the folder to start over\n')
    score_calls.die_after, score_calls.count = None, 0
    assert main(command) == 0
    assert score_calls.count == len(SIZES) - 2  # the two recorded images were not scored again
    assert output.read_bytes() == reference_csv
    assert sorted(os.listdir(tmp_path)) == ['scores.csv', 'scores.csv.settings.json']


def test_files_from_lists_each_file_once_and_reports_missing_entries(photos, tiny_clip_path, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(photos)
    listing = tmp_path / 'list.txt'
    listing.write_text('im1.png\n\n./im1.png\nmissing.png\nim0.png\nim1.png\n', encoding='utf-8')
    assert main(['--files-from', str(listing), 'im0.png', '--pretrained', tiny_clip_path, *BATCH]) == 1
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [(row['path'], bool(row['ddr'])) for row in rows] == [
        ('im0.png', True), ('im1.png', True), ('missing.png', False)]  # arguments first, then the list
    assert rows[2]['error'] == 'image file not found: missing.png'
    assert captured.err == 'ddr-score: image file not found: missing.png\n'


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the gloo CPU path')
def test_torchrun_two_gloo_processes_write_the_one_process_csv(photos, tiny_clip_path, reference_csv, tmp_path):
    """The one real multi-process run of this module (the kill and resume are checked in-process above), in the
    form docs/blind-iqa.md documents: ``torchrun ... --no-python ddr-score``."""
    output = tmp_path / 'scores.csv'
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--no-python',
               'ddr-score', str(photos), '-o', str(output), '--pretrained', tiny_clip_path, *BATCH]
    environment = subprocess_env(PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}')
    run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert output.read_bytes() == reference_csv
    assert sorted(os.listdir(tmp_path)) == ['scores.csv', 'scores.csv.settings.json']


def test_progress_counts_the_other_processes_records_across_the_rename(tmp_path):
    progress = shards.ShardProgress(str(tmp_path), 3)
    partial = tmp_path / shards.shard_name(shards.Launch(1, 3), partial=True)
    partial.write_text('{"path": "a"}\n{"path": "b"}\n{"pa')
    assert progress.new_records(force=True) == 2 and not progress.finished()
    assert progress.new_records() == 0  # looked less than POLL_SECONDS ago
    with open(partial, 'a') as stream:
        stream.write('th": "c"}\n{"path": "d"}\n')
    os.replace(partial, tmp_path / shards.shard_name(shards.Launch(1, 3)))
    (tmp_path / shards.shard_name(shards.Launch(2, 3))).write_text('')
    assert progress.new_records(force=True) == 2 and progress.finished()


@pytest.mark.parametrize('environment, device, cuda, expected', [
    ({}, None, True, (shards.Launch(0, 1, 0), None)),
    ({'RANK': '5', 'WORLD_SIZE': '8', 'LOCAL_RANK': '1'}, None, True, (shards.Launch(5, 8, 1), 'cuda:1')),
    ({'RANK': '5', 'WORLD_SIZE': '8', 'LOCAL_RANK': '1'}, 'cuda', True, (shards.Launch(5, 8, 1), 'cuda:1')),
    ({'RANK': '1', 'WORLD_SIZE': '2', 'LOCAL_RANK': '1'}, None, False, (shards.Launch(1, 2, 1), 'cpu')),
    ({'RANK': '1', 'WORLD_SIZE': '2', 'LOCAL_RANK': '1'}, 'cuda:0', True, (shards.Launch(1, 2, 1), 'cuda:0')),
])
def test_torchrun_environment_gives_rank_and_device(environment, device, cuda, expected):
    launch = shards.launch_from_environment(environment)
    assert (launch, shards.process_device(device, launch, cuda)) == expected
