"""Hostile and careless input to eval_biqa.py, the IQA dataset loaders, the metrics with a minimum image size
and the dataset preparation scripts (issue 18's score cache and preparation cases, issue 14's dataset files).

One parametrised test runs every case (a function of ``tmp_path``, ``capsys`` and ``monkeypatch``); each
asserts that the message names the file, line, column or option to fix, and that no output was lost or
half-written. NIQE is replaced by a cheap deterministic stand-in where the case is about the cache, not
about NIQE.
"""
import csv
import functools
import json
import math
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Callable, Dict

import cv2
import numpy as np
import pytest

from ddr_basicsr.iqa import descriptor, evaluation
from ddr_basicsr.iqa.datasets import load_dataset
from test_eval_biqa import load_script
from test_iqa_datasets import write_csiq, write_image, write_kadid10k, write_koniq10k, write_tid2013
from test_prepare_datasets import make_realsr_city100, no_partials, read_lmdb, realsr_args, seed_of, write_pair

CASES: Dict[str, Callable] = {}


def case(function: Callable) -> Callable:
    CASES[function.__name__] = function
    return function


def cases(template: Callable, variants: Dict[str, tuple]) -> None:
    """Register ``template`` once per variant: (tmp_path, capsys, monkeypatch, *arguments)."""
    for name, arguments in variants.items():
        CASES[name] = functools.partial(template, *arguments)


def snapshot(folder: Path) -> Dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its content."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*')) if path.is_file()}


# --------------------------------------------------------------------------- eval_biqa.py and its score cache
eval_biqa = load_script('eval_biqa')


def fake_niqe(task):
    """A deterministic stand-in for ``niqe_of_file`` (the cache is under test, not NIQE)."""
    path = task[0]
    return path, float(zlib.crc32(os.path.basename(path).encode()) % 1000) / 10, ''


def stand_in_niqe(monkeypatch):
    """Replace NIQE by :func:`fake_niqe`; (the base names of the images it scores, the names it gives NaN)."""
    calls, nan_for = [], set()

    def niqe(task):
        calls.append(os.path.basename(task[0]))
        path, value, error = fake_niqe(task)
        return path, math.nan if calls[-1] in nan_for else value, error

    monkeypatch.setattr(evaluation, 'niqe_of_file', niqe)
    return calls, nan_for


def run_eval(root: Path, out: Path, capsys):
    """``eval_biqa.py --dataset csiq=ROOT --output-dir OUT --metrics niqe --niqe-workers 0``: (status, stderr)."""
    status = eval_biqa.main(['--dataset', f'csiq={root}', '--output-dir', str(out), '--metrics', 'niqe',
                             '--niqe-workers', '0'])
    return status, capsys.readouterr().err


def csiq_run(tmp_path: Path, capsys):
    """A complete first run over the miniature CSIQ (6 images); its cache file."""
    write_csiq(str(tmp_path / 'csiq'))
    assert run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)[0] == 0
    return next((tmp_path / 'out' / 'cache').glob('csiq-niqe-*.jsonl'))


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + '\n'
    path.write_text(''.join(lines))


def damaged_cache_line(number, text, problem, tmp_path, capsys, monkeypatch):
    stand_in_niqe(monkeypatch)
    cache = csiq_run(tmp_path, capsys)
    replace_line(cache, number, text)
    before = snapshot(tmp_path / 'out')
    status, err = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 2
    assert f'score cache {cache}, line {number}: {problem}' in err
    assert 'delete that line (its image is scored again) or the whole file' in err
    assert snapshot(tmp_path / 'out') == before  # cache and reports untouched


cases(damaged_cache_line, {
    'cache_corrupt_middle_line': (3, '{"image": "dst_imgs/blur/1600.blur.3.png", "niqe": }', 'not a JSON record'),
    'cache_corrupt_settings_line': (1, '{"image": "x.png", "niqe": 1.0}', 'the first line must hold the settings'),
    'cache_record_with_a_text_score': (2, '{"image": "dst_imgs/awgn/1600.AWGN.1.png", "niqe": "4.2"}',
                                       'expected {"image": <name>, "niqe": <number>'),
})


@case
def cache_line_of_binary_garbage(tmp_path, capsys, monkeypatch):
    stand_in_niqe(monkeypatch)
    cache = csiq_run(tmp_path, capsys)
    lines = cache.read_bytes().splitlines(keepends=True)
    cache.write_bytes(b''.join(lines[:3] + [b'\xff\xfe\x00garbage\n'] + lines[4:]))
    before = snapshot(tmp_path / 'out')
    status, err = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 2 and f'score cache {cache}, line 4: not a JSON record' in err
    assert snapshot(tmp_path / 'out') == before


@case
def cache_nan_score_is_scored_again(tmp_path, capsys, monkeypatch):
    calls, _ = stand_in_niqe(monkeypatch)
    cache = csiq_run(tmp_path, capsys)
    record = json.loads(cache.read_text().splitlines()[2])
    replace_line(cache, 3, json.dumps({**record, 'niqe': math.nan}))  # json writes NaN
    calls.clear()
    status, _ = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 0 and calls == [os.path.basename(record['image'])]
    row = evaluation_row(tmp_path / 'out')
    assert row['scored'] == '6' and row['srcc'] != ''


def evaluation_row(out: Path) -> Dict[str, str]:
    with open(out / 'biqa_results.csv', newline='') as handle:
        return next(csv.DictReader(handle))


@case
def fresh_nan_score_is_a_named_failure_left_out(tmp_path, capsys, monkeypatch):
    calls, nan_for = stand_in_niqe(monkeypatch)
    write_csiq(str(tmp_path / 'csiq'))
    nan_for.add('aerial_city.JPEG.2.png')
    status, err = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 1
    assert 'niqe failed on dst_imgs/jpeg/aerial_city.JPEG.2.png: the NIQE score is nan (not finite): left out of ' \
           'the correlations' in err
    row = evaluation_row(tmp_path / 'out')
    assert row['scored'] == '5' and row['images'] == '6' and row['srcc'] != '' and row['plcc'] != ''
    cache = next((tmp_path / 'out' / 'cache').glob('*.jsonl'))
    assert 'NaN' not in cache.read_text() and len(cache.read_text().splitlines()) == 1 + 5
    calls.clear()
    nan_for.clear()
    assert run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)[0] == 0
    assert calls == ['aerial_city.JPEG.2.png']  # tried again, and now in
    assert evaluation_row(tmp_path / 'out')['scored'] == '6'


@case
def cache_killed_while_writing_its_settings_line(tmp_path, capsys, monkeypatch):
    stand_in_niqe(monkeypatch)
    cache = csiq_run(tmp_path, capsys)
    reference = (tmp_path / 'out' / 'biqa_results.csv').read_text()
    cache.write_text(cache.read_text()[:25])  # no complete line left
    status, _ = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 0 and (tmp_path / 'out' / 'biqa_results.csv').read_text() == reference
    assert len(cache.read_text().splitlines()) == 7


@case
def eval_biqa_missing_dataset_root(tmp_path, capsys, monkeypatch):
    status, err = run_eval(tmp_path / 'absent', tmp_path / 'out', capsys)
    assert status == 2 and f'eval_biqa.py: error: csiq: dataset root folder not found: {tmp_path / "absent"}' in err
    assert not (tmp_path / 'out').exists()


# --------------------------------------------------------------------------- dataset files as shipped
def write_koniq_github_csv(root: Path, mos=(61.5, 40.25, 80.0), sets=('training', 'test', 'test'),
                           name: str = 'koniq10k_distributions_sets.csv'):
    """The KonIQ-10k label file of the authors' GitHub repository (MOS on 1-100, a set column)."""
    write_koniq10k(str(root))
    (root / 'koniq10k_scores_and_distributions.csv').unlink()
    names = ['10004473376.jpg', '10007357496.jpg', '10020766793.jpg']
    rows = [f'{image},0,1,2,1,0,4,{score},0.5,{split}' for image, score, split in zip(names, mos, sets)]
    (root / name).write_text('image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n' + '\n'.join(rows) + '\n')


@case
def koniq_github_csv_loads_on_its_1_100_scale(tmp_path, capsys, monkeypatch):
    write_koniq_github_csv(tmp_path)
    dataset = load_dataset('koniq10k', str(tmp_path))
    assert list(dataset.scores) == [61.5, 40.25, 80.0]
    assert dataset.score_source == 'column MOS of koniq10k_distributions_sets.csv, 1-100 scale'
    assert dataset.options == {'resolution': '1024x768', 'score_column': 'MOS'}
    test = load_dataset('koniq10k', str(tmp_path), split='test')
    assert [os.path.basename(path) for path in test.paths] == ['10007357496.jpg', '10020766793.jpg']
    assert test.options['split'] == 'test'


@case
def koniq_github_csv_under_the_other_name_is_refused(tmp_path, capsys, monkeypatch):
    write_koniq_github_csv(tmp_path, name='koniq10k_scores_and_distributions.csv')
    label_file = tmp_path / 'koniq10k_scores_and_distributions.csv'
    with pytest.raises(ValueError) as error:
        load_dataset('koniq10k', str(tmp_path), score_column='MOS')
    assert f'koniq10k: {label_file}: column MOS holds values from 40.25 to 80 (image 10004473376.jpg: 61.5), ' \
           'outside its documented 1-5 scale' in str(error.value)
    assert 'koniq10k_distributions_sets.csv has MOS on 1-100' in str(error.value)
    with pytest.raises(ValueError, match=r"lacks the columns \['MOS_zscore'\].*--koniq-score"):
        load_dataset('koniq10k', str(tmp_path))


@case
def koniq_1_5_values_in_the_1_100_column_are_refused(tmp_path, capsys, monkeypatch):
    write_koniq_github_csv(tmp_path, mos=(3.1, 2.2, 3.9))
    with pytest.raises(ValueError, match=r'column MOS holds values from 2\.2 to 3\.9 only, the lowest tenth of its '
                                         r'documented 1-100 scale: a column on a smaller scale \(1-5\?\)'):
        load_dataset('koniq10k', str(tmp_path))


@case
def koniq_split_without_the_github_csv(tmp_path, capsys, monkeypatch):
    write_koniq10k(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"koniq10k_distributions_sets.csv \(split='test' needs its 'set' "
                                                r"column\).*subpic/koniq"):
        load_dataset('koniq10k', str(tmp_path), split='test')


@case
def koniq_split_absent_from_the_set_column(tmp_path, capsys, monkeypatch):
    write_koniq_github_csv(tmp_path, sets=('train', 'val', 'val'))
    with pytest.raises(ValueError, match=r"no image of set 'test' in .*koniq10k_distributions_sets.csv; its set "
                                         r"column holds \['train', 'val'\]"):
        load_dataset('koniq10k', str(tmp_path), split='test')


@case
def csiq_upper_case_distortion_folders(tmp_path, capsys, monkeypatch):
    expected = write_csiq(str(tmp_path))
    for folder in (tmp_path / 'dst_imgs').iterdir():
        folder.rename(folder.parent / folder.name.upper())
    dataset = load_dataset('csiq', str(tmp_path))
    relative = [Path(path).relative_to(tmp_path).as_posix() for path in dataset.paths]
    assert relative[0] == 'dst_imgs/AWGN/1600.AWGN.1.png' and len(relative) == len(expected)
    assert all(os.path.isfile(path) for path in dataset.paths)


@case
def csiq_dmos_on_a_0_100_scale_is_refused(tmp_path, capsys, monkeypatch):
    write_csiq(str(tmp_path))
    from openpyxl import load_workbook
    workbook = load_workbook(tmp_path / 'csiq.DMOS.xlsx')
    for row in workbook['all_by_image'].iter_rows(min_row=5):
        row[5].value *= 100
    workbook.save(tmp_path / 'csiq.DMOS.xlsx')
    with pytest.raises(ValueError, match=r'csiq\.DMOS\.xlsx: column dmos holds values from 6\.2 to 55 .*outside its '
                                         r'documented 0-1 scale'):
        load_dataset('csiq', str(tmp_path))


def kadid_bad_score(value, message, tmp_path, capsys, monkeypatch):
    write_kadid10k(str(tmp_path))
    label_file = tmp_path / 'dmos.csv'
    label_file.write_text(label_file.read_text().replace('4.33', value))
    with pytest.raises(ValueError) as error:
        load_dataset('kadid10k', str(tmp_path))
    assert f'kadid10k: {label_file}: column dmos of image I01_01_02.png {message}' in str(error.value)


cases(kadid_bad_score, {
    'kadid_score_that_is_not_a_number': ('n/a', "is 'n/a', not a number"),
    'kadid_nan_score': ('nan', 'is nan, not a score on the documented 1-5 scale'),
})


@case
def tid2013_score_that_is_not_a_number(tmp_path, capsys, monkeypatch):
    write_tid2013(str(tmp_path))
    label_file = tmp_path / 'mos_with_names.txt'
    label_file.write_bytes(label_file.read_bytes().replace(b'3.1 ', b'3,1 '))
    with pytest.raises(ValueError, match=re.escape(f"{label_file} line 2: column MOS of image I01_02_5.BMP is '3,1'")):
        load_dataset('tid2013', str(tmp_path))


# --------------------------------------------------------------------------- metrics with a minimum image size
@case
def niqe_on_images_too_small_for_it(tmp_path, capsys, monkeypatch):
    write_image(str(tmp_path / 'small.png'), 1, (48, 64))
    path, value, error = evaluation.niqe_of_file((str(tmp_path / 'small.png'), None))
    assert value is None
    assert error == ('image too small for NIQE: 64x48 px (width x height); NIQE needs at least two 96x96 blocks, '
                     'e.g. 192x96 px')
    assert evaluation.niqe_size_problem(96, 96).startswith('image too small for NIQE: 96x96 px')
    assert evaluation.niqe_size_problem(191, 96) and not evaluation.niqe_size_problem(96, 192)


@case
def cpbd_on_images_too_small_for_it(tmp_path, capsys, monkeypatch):
    write_image(str(tmp_path / 'small.png'), 1, (48, 64))
    attributes, problem = descriptor.image_attributes(str(tmp_path / 'small.png'))
    assert attributes['sharpness'] is None and attributes['colorfulness'] > 0
    assert problem == ('image too small for CPBD sharpness: 64x48 px (width x height); CPBD sharpness needs at least '
                       'one 64x64 block')
    with pytest.raises(ValueError, match='image too small for CPBD sharpness: 64x63 px'):
        descriptor.cpbd_sharpness(np.zeros((63, 64, 3)))


# --------------------------------------------------------------------------- descriptor_report.py
descriptor_script = load_script('descriptor_report')
TINY_CLIP = Path(__file__).parent / 'data' / 'tiny_clip_vit_openai_fp16.pt'  # never the network, even on a regression


@case
def descriptor_report_mos_csv_without_the_column(tmp_path, capsys, monkeypatch):
    write_image(str(tmp_path / 'imgs' / 'a.png'), 1, (64, 64))
    (tmp_path / 'mos.csv').write_text('image,mos\na.png,3\n')
    status = descriptor_script.main([str(tmp_path / 'imgs'), '--mos-csv', str(tmp_path / 'mos.csv'), '--mos-column',
                                     'MOS', '--output-dir', str(tmp_path / 'out'), '--pretrained', str(TINY_CLIP)])
    err = capsys.readouterr().err
    assert status == 2 and f"descriptor_report.py: error: {tmp_path / 'mos.csv'}: no column ['MOS']" in err
    assert '--mos-column' in err and not (tmp_path / 'out').exists()


@case
def descriptor_report_missing_input(tmp_path, capsys, monkeypatch):
    status = descriptor_script.main([str(tmp_path / 'absent.png'), '--output-dir', str(tmp_path / 'out'),
                                     '--pretrained', str(TINY_CLIP), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert status == 2 and f"descriptor_report.py: error: {tmp_path / 'absent.png'}: no such image file" in err
    assert not (tmp_path / 'out').exists()


# --------------------------------------------------------------------------- dataset preparation
prepare_gopro = load_script('prepare_gopro')


def make_flat_gopro(root: Path, extension: str = '.jpg') -> Dict[str, Path]:
    """The flat GoPro layout (train/{input,target}) with 3 pairs; the LQ paths by pair name."""
    lq = {}
    for index in range(3):
        name = f'GOPR0372_07_00-00004{index}'
        folder = root / 'train'
        write_pair(folder / 'target' / f'{name}{extension}', folder / 'input' / f'{name}{extension}',
                   seed=seed_of('flat', index))
        lq[name] = folder / 'input' / f'{name}{extension}'
    return lq


def prepare_with_a_complete_earlier_output(tmp_path: Path, capsys, extension: str = '.jpg'):
    """A first complete run (whole images); the LQ inputs and a snapshot of the output."""
    lq = make_flat_gopro(tmp_path / 'in', extension)
    arguments = ['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'), '--splits', 'train']
    assert prepare_gopro.main(arguments + ['--crop-size', '0']) == 0
    assert len(read_lmdb(tmp_path / 'out' / 'train' / 'blur_crops.lmdb')) == 3
    capsys.readouterr()
    return lq, arguments + ['--crop-size', '32', '--step', '16', '--overwrite'], snapshot(tmp_path / 'out')


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])


def check_refused_and_kept(tmp_path, capsys, arguments, before, *named: Path) -> str:
    assert prepare_gopro.main(arguments) == 1
    err = capsys.readouterr().err  # tqdm's progress, then the error
    assert 'prepare_gopro.py: error: ' in err
    err = err[err.index('prepare_gopro.py: error: '):]
    for path in named:
        assert str(path) in err
    assert snapshot(tmp_path / 'out') == before and no_partials(tmp_path / 'out')
    return err


@case
def gopro_truncated_jpeg(tmp_path, capsys, monkeypatch):
    lq, arguments, before = prepare_with_a_complete_earlier_output(tmp_path, capsys)
    broken = lq['GOPR0372_07_00-000041']
    truncate(broken)
    assert cv2.imread(str(broken)) is not None  # OpenCV decodes it without an error (grey where data is missing)
    err = check_refused_and_kept(tmp_path, capsys, arguments, before, broken)
    assert f'1 unreadable image(s), nothing written to {tmp_path / "out" / "train" / "sharp_crops.lmdb"}' in err
    assert f'JPEG image {broken} is truncated or corrupt (image file is truncated' in err


@case
def gopro_truncated_jpeg_named_png(tmp_path, capsys, monkeypatch):
    lq, arguments, before = prepare_with_a_complete_earlier_output(tmp_path, capsys)
    broken = lq['GOPR0372_07_00-000040']
    truncate(broken)
    renamed = {path: path.with_suffix('.png') for path in (tmp_path / 'in').rglob('*.jpg')}
    for path, new in renamed.items():
        path.rename(new)
    check_refused_and_kept(tmp_path, capsys, arguments, before, renamed[broken])


@case
def gopro_every_unreadable_image_is_listed(tmp_path, capsys, monkeypatch):
    lq, arguments, before = prepare_with_a_complete_earlier_output(tmp_path, capsys, '.png')
    first, second = lq['GOPR0372_07_00-000040'], lq['GOPR0372_07_00-000042']
    truncate(first)
    truncate(second)
    err = check_refused_and_kept(tmp_path, capsys, arguments, before, first, second)
    assert '2 unreadable image(s)' in err and f'OpenCV cannot read image {first}' in err


@case
def gopro_empty_image_file(tmp_path, capsys, monkeypatch):
    lq, arguments, before = prepare_with_a_complete_earlier_output(tmp_path, capsys, '.png')
    lq['GOPR0372_07_00-000041'].write_bytes(b'')
    check_refused_and_kept(tmp_path, capsys, arguments, before, lq['GOPR0372_07_00-000041'])


@case
def gopro_missing_input_folder(tmp_path, capsys, monkeypatch):
    _, arguments, before = prepare_with_a_complete_earlier_output(tmp_path, capsys, '.png')
    shutil.rmtree(tmp_path / 'in' / 'train')
    check_refused_and_kept(tmp_path, capsys, arguments, before, tmp_path / 'in' / 'train')


# --------------------------------------------------------------------------- issue 27: caches, reports, scripts
@case
def cache_of_another_copy_of_the_dataset_is_not_reused(tmp_path, capsys, monkeypatch):
    calls, _ = stand_in_niqe(monkeypatch)
    csiq_run(tmp_path, capsys)
    shutil.copytree(tmp_path / 'csiq', tmp_path / 'csiq-copy')
    calls.clear()
    status, _ = run_eval(tmp_path / 'csiq-copy', tmp_path / 'out', capsys)
    assert status == 0 and len(calls) == 6  # scored afresh, not taken from the first copy's cache
    assert len(list((tmp_path / 'out' / 'cache').glob('csiq-niqe-*.jsonl'))) == 2


@case
def cache_with_an_appended_duplicate_record(tmp_path, capsys, monkeypatch):
    stand_in_niqe(monkeypatch)
    cache = csiq_run(tmp_path, capsys)
    record = json.loads(cache.read_text().splitlines()[2])
    with open(cache, 'a') as handle:
        handle.write(json.dumps({**record, 'niqe': 99.0}) + '\n')
    before = snapshot(tmp_path / 'out')
    status, err = run_eval(tmp_path / 'csiq', tmp_path / 'out', capsys)
    assert status == 2 and f'score cache {cache}, line 8: a second record of {record["image"]}' in err
    assert snapshot(tmp_path / 'out') == before


def descriptor_mos_value(value, tmp_path, capsys, monkeypatch):
    for name in ('a.png', 'b.png'):
        write_image(str(tmp_path / 'imgs' / name), 1, (64, 64))
    (tmp_path / 'mos.csv').write_text(f'image,mos\na.png,3\nb.png,{value}\n')
    status = descriptor_script.main([str(tmp_path / 'imgs'), '--mos-csv', str(tmp_path / 'mos.csv'), '--output-dir',
                                     str(tmp_path / 'out'), '--pretrained', str(TINY_CLIP), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert status == 2 and not (tmp_path / 'out').exists()
    assert f"descriptor_report.py: error: {tmp_path / 'mos.csv'} line 3: column mos of image 'b.png' is {value!r}, " \
           'not a finite number; fix or remove that row' in err


cases(descriptor_mos_value, {'descriptor_mos_csv_text_value': ('good',), 'descriptor_mos_csv_nan_value': ('nan',),
                             'descriptor_mos_csv_empty_value': ('',)})


def descriptor_top_k(value, tmp_path, capsys, monkeypatch):
    write_image(str(tmp_path / 'imgs' / 'a.png'), 1, (64, 64))
    with pytest.raises(SystemExit) as stop:
        descriptor_script.main([str(tmp_path / 'imgs'), '--top-k', value, '--output-dir', str(tmp_path / 'out')])
    assert stop.value.code == 2 and not (tmp_path / 'out').exists()
    assert f'--top-k must be at least 1 (images per side of each montage row), got {value}' in capsys.readouterr().err


cases(descriptor_top_k, {'descriptor_top_k_zero': ('0',), 'descriptor_top_k_negative': ('-3',)})


reproduce = load_script('reproduce')


@case
def reproduce_fig1_missing_image(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr('ddr_basicsr.losses.lpips_loss.LPIPSLoss', lambda **kwargs: pytest.fail('weights looked for'))
    status = reproduce.main(['fig1', '--images', str(tmp_path / 'absent.png'), '--output-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert status == 2 and f'reproduce.py fig1: error: image file not found: {tmp_path / "absent.png"}' in err
    assert not (tmp_path / 'out').exists()


def reproduce_missing_results_root(command, tmp_path, capsys, monkeypatch):
    status = reproduce.main([command, '--output-dir', str(tmp_path / 'out'), '--results-root', str(tmp_path / 'runs')])
    err = capsys.readouterr().err
    assert status == 2 and not (tmp_path / 'out').exists()
    assert f'reproduce.py {command}: error: --results-root {tmp_path / "runs"}: no results/ or experiments/ folder ' \
           'there' in err


cases(reproduce_missing_results_root, {'reproduce_tables4_6_missing_results_root': ('tables4-6',),
                                       'reproduce_finetunes_missing_results_root': ('finetunes',)})


@case
def get_pretrained_folder_that_is_a_file(tmp_path, capsys, monkeypatch):
    (tmp_path / 'models').write_text('keep me')
    with pytest.raises(SystemExit) as stop:
        load_script('get_pretrained').main(['--folder', str(tmp_path / 'models'), '--offline'])
    assert stop.value.code == 2 and (tmp_path / 'models').read_text() == 'keep me'
    assert f'--folder {tmp_path / "models"}: {tmp_path / "models"} is a file, not a folder' in capsys.readouterr().err


@case
def realsr_missing_partner_in_the_test_split_writes_no_split(tmp_path, capsys, monkeypatch):
    make_realsr_city100(tmp_path / 'in')
    partner = tmp_path / 'in' / 'RealSR' / 'Nikon' / 'Test' / '4' / 'Nikon_003_LR4.png'
    partner.unlink()
    status = load_script('prepare_realsr_city100').main(realsr_args(tmp_path / 'in', '--crop-size', '0'))
    err = capsys.readouterr().err
    assert status == 1 and 'prepare_realsr_city100.py: error: Unmatched images.' in err and 'Nikon_003' in err
    assert not (tmp_path / 'in' / 'datasets').exists()  # the train split was not written first


@pytest.mark.parametrize('name', CASES)
def test_bad_input(name, tmp_path, capsys, monkeypatch):
    CASES[name](tmp_path, capsys, monkeypatch)
