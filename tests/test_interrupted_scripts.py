"""eval_biqa.py, descriptor_report.py and the dataset preparation, interrupted at chosen moments (issue 17,
item 8): an exception (KeyboardInterrupt, as Ctrl-C or SIGTERM's handler raise) injected by wrapping the
function that runs at that moment, and for the preparation also SIGKILL in a forked child, where no clean-up
code runs. Each time the previous outputs stay whole (old or new, never half-written or mixed) and the next
run resumes or restarts and finishes with the outputs of an uninterrupted run."""
import os
import signal
from pathlib import Path
from typing import Callable, Dict

import cv2
import numpy as np
import pytest

from ddr_basicsr.data import preparation
from ddr_basicsr.data.layouts import gopro_plans
from ddr_basicsr.data.preparation import CropSpec, aside_path, partial_path, run_plans
from ddr_basicsr.iqa import descriptor, evaluation
from ddr_basicsr.utils import atomic_files
from test_bad_input_scripts import fake_niqe, run_eval, snapshot
from test_iqa_datasets import write_csiq
from test_prepare_datasets import make_gopro_large, read_lmdb


def interrupt_on_call(monkeypatch, target: object, name: str, call: int, action: Callable[[], None] = None):
    """Wrap ``target.name`` (through ``monkeypatch``) so that its ``call``-th call runs ``action`` (default: raise
    KeyboardInterrupt) before doing its work; returns the wrapper's list of calls."""
    original = getattr(target, name)
    count = []

    def wrapper(*args, **kwargs):
        count.append(1)
        if len(count) == call:
            (action or _raise_interrupt)()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return count


def _raise_interrupt():
    raise KeyboardInterrupt('injected')


# --------------------------------------------------------------------------- eval_biqa.py
@pytest.fixture()
def csiq_reference(tmp_path, capsys, monkeypatch):
    """The miniature CSIQ and the reports of an uninterrupted run (NIQE replaced by a cheap stand-in)."""
    monkeypatch.setattr(evaluation, 'niqe_of_file', fake_niqe)
    write_csiq(str(tmp_path / 'csiq'))
    assert run_eval(tmp_path / 'csiq', tmp_path / 'reference', capsys)[0] == 0
    return {name: (tmp_path / 'reference' / name).read_text() for name in ('biqa_results.md', 'biqa_results.csv',
                                                                            'scores_csiq.csv')}


def old_reports(out: Path) -> Dict[str, bytes]:
    """Reports of an earlier run (stand-ins) in ``out``; their snapshot."""
    out.mkdir()
    for name in ('biqa_results.md', 'biqa_results.csv', 'scores_csiq.csv'):
        (out / name).write_text(f'earlier {name}\n')
    return snapshot(out)


@pytest.mark.parametrize('image', [1, 4, 6])
def test_eval_biqa_interrupted_while_scoring_resumes(tmp_path, capsys, monkeypatch, csiq_reference, image):
    out = tmp_path / 'out'
    before = old_reports(out)
    interrupt_on_call(monkeypatch, evaluation, 'niqe_of_file', image)
    with pytest.raises(KeyboardInterrupt):
        run_eval(tmp_path / 'csiq', out, capsys)
    assert {name: data for name, data in snapshot(out).items() if not name.startswith('cache')} == before
    cache = next((out / 'cache').glob('*.jsonl'))
    assert len(cache.read_text().splitlines()) == image  # the settings line and the images scored before
    calls = interrupt_on_call(monkeypatch, evaluation, 'niqe_of_file', 0)
    assert run_eval(tmp_path / 'csiq', out, capsys)[0] == 0
    assert len(calls) == 6 - (image - 1)  # only the images not cached
    assert {name: (out / name).read_text() for name in csiq_reference} == csiq_reference


@pytest.mark.parametrize('rename', [1, 2])
def test_eval_biqa_interrupted_while_writing_its_reports(tmp_path, capsys, monkeypatch, csiq_reference, rename):
    out = tmp_path / 'out'
    before = old_reports(out)
    interrupt_on_call(monkeypatch, atomic_files.os, 'replace', 1 + rename)  # the 1st rename is scores_csiq.csv
    with pytest.raises(KeyboardInterrupt):
        run_eval(tmp_path / 'csiq', out, capsys)
    monkeypatch.undo()
    now = {name: data for name, data in snapshot(out).items() if not name.startswith('cache')}
    assert set(now) == set(before)  # no temporary file left
    for name, data in now.items():  # each report whole: the earlier one or the new one
        assert data in (before[name], csiq_reference[name].encode()), name
    assert now['biqa_results.md'] == before['biqa_results.md']  # renamed last
    monkeypatch.setattr(evaluation, 'niqe_of_file', fake_niqe)
    assert run_eval(tmp_path / 'csiq', out, capsys)[0] == 0
    assert {name: (out / name).read_text() for name in csiq_reference} == csiq_reference


# --------------------------------------------------------------------------- descriptor_report.py
def descriptor_records(folder: Path):
    """Four measured images (without DDR: the report writing is under test)."""
    records = []
    for index in range(4):
        path = folder / f'im{index}.png'
        folder.mkdir(exist_ok=True)
        assert cv2.imwrite(str(path), np.full((24, 24, 3), 60 * index, np.uint8))
        records.append({'path': str(path), 'blur': 0.1 * index, 'quality': float(index), 'colorfulness': 1.0 + index,
                        'sharpness': 0.5})
    return records


@pytest.mark.parametrize('moment', ['montage', 'rename'])
def test_descriptor_report_interrupted_keeps_the_earlier_report(tmp_path, monkeypatch, moment):
    records = descriptor_records(tmp_path / 'imgs')
    out = tmp_path / 'out'
    out.mkdir()
    names = ('descriptor_srcc.md', 'descriptor_srcc.csv', 'descriptor_scores.csv', 'descriptor_montage.png')
    for name in names:
        (out / name).write_text(f'earlier {name}\n')
    before = snapshot(out)
    if moment == 'montage':
        from matplotlib.figure import Figure
        interrupt_on_call(monkeypatch, Figure, 'savefig', 1)
    else:
        interrupt_on_call(monkeypatch, atomic_files.os, 'replace', 1)
    with pytest.raises(KeyboardInterrupt):
        descriptor.write_descriptor_report(str(out), records, ['blur'], 1, {'source': 'test'})
    assert snapshot(out) == before
    monkeypatch.undo()
    markdown = descriptor.write_descriptor_report(str(out), records, ['blur'], 1, {'source': 'test'})
    assert sorted(snapshot(out)) == sorted(names)
    assert (out / 'descriptor_srcc.md').read_text() == markdown
    assert cv2.imread(str(out / 'descriptor_montage.png')) is not None


# --------------------------------------------------------------------------- dataset preparation
NEW_CROP = CropSpec(32, 16)  # 6 sub-images per pair: 24 entries; the earlier output holds 4 whole images


def prepare(tmp_path: Path, crop, overwrite: bool) -> None:
    list(run_plans(gopro_plans(tmp_path / 'in', tmp_path / 'out', splits=['train'], crop=crop), overwrite=overwrite))


def outputs(tmp_path: Path) -> Dict[str, int]:
    """Entry count of each train output present; each must be a complete lmdb (meta_info.txt = entries)."""
    counts = {}
    for name in ('sharp_crops.lmdb', 'blur_crops.lmdb'):
        path = tmp_path / 'out' / 'train' / name
        if path.exists():
            counts[name] = len(read_lmdb(path))
    return counts


def check_whole_and_rerun(tmp_path: Path) -> None:
    """After an interruption: every output present is complete, GT and LQ of one generation; a plain re-run
    (no --overwrite) ends with both outputs complete and no hidden folder left."""
    counts = outputs(tmp_path)
    assert set(counts.values()) <= {4, 24} and len(set(counts.values())) <= 1, counts
    prepare(tmp_path, NEW_CROP, overwrite=False)
    final = outputs(tmp_path)
    assert len(final) == 2 and len(set(final.values())) == 1
    assert final == counts or 24 in final.values()
    assert not [path for path in (tmp_path / 'out').rglob('.*')], 'hidden partial or old folders left'


def earlier_output(tmp_path: Path) -> None:
    make_gopro_large(tmp_path / 'in')
    prepare(tmp_path, None, overwrite=False)
    assert outputs(tmp_path) == {'sharp_crops.lmdb': 4, 'blur_crops.lmdb': 4}


# moments of an --overwrite run over an earlier output: while writing records (the 2nd pair), before each of the
# four renames that put the new outputs in place (old GT aside, old LQ aside, new GT in, new LQ in), and while
# the first file of the old outputs is deleted
MOMENTS = [('records', 2)] + [('rename', k) for k in (1, 2, 3, 4)] + [('delete', 1)]
_WRAPPED = {'records': (preparation, 'pair_records'), 'rename': (preparation.os, 'replace'),
            'delete': (preparation.os, 'unlink')}


def inject(monkeypatch, moment: str, call: int, action: Callable[[], None] = None) -> None:
    interrupt_on_call(monkeypatch, *_WRAPPED[moment], call, action)


@pytest.mark.parametrize('moment, call', MOMENTS)
def test_preparation_interrupted_keeps_whole_outputs(tmp_path, monkeypatch, moment, call):
    earlier_output(tmp_path)
    inject(monkeypatch, moment, call)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path, NEW_CROP, overwrite=True)
    monkeypatch.undo()
    assert not partial_path(tmp_path / 'out' / 'train' / 'sharp_crops.lmdb').exists()
    check_whole_and_rerun(tmp_path)


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='SIGKILL in a forked child needs os.fork')
@pytest.mark.parametrize('moment, call', MOMENTS)
def test_preparation_killed_keeps_whole_outputs(tmp_path, moment, call):
    earlier_output(tmp_path)
    child = os.fork()
    if child == 0:  # the child prepares and kills itself at the moment; it never returns to pytest
        try:
            inject(pytest.MonkeyPatch(), moment, call, lambda: os.kill(os.getpid(), signal.SIGKILL))
            prepare(tmp_path, NEW_CROP, overwrite=True)
        finally:
            os._exit(3)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if moment == 'rename' and call > 1:
        assert aside_path(tmp_path / 'out' / 'train' / 'sharp_crops.lmdb').exists()  # the old GT was set aside
    check_whole_and_rerun(tmp_path)
