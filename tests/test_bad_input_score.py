"""Hostile and careless ``ddr-score`` input (issue 18): each case ends in a clear error naming the file or option,
or in the documented behaviour, and no file is lost or half-written."""
import csv
import io
import os

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr import image_io
from ddr_basicsr.ddr import DDR
from ddr_basicsr.iqa import scoring
from ddr_basicsr.iqa.scoring import collect_input_rows, iter_quality_scores
from ddr_basicsr.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.score import main


def _image(path, height, width, seed=0):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def _snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (symlinks as their target text)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            files[key] = os.readlink(path) if os.path.islink(path) else open(path, 'rb').read()
    return files


@pytest.fixture()
def decoded(monkeypatch):
    """Byte counts of the files handed to OpenCV's decoder."""
    paths = []
    original = image_io.cv2.imdecode

    def recording(data, flags):
        paths.append(len(data))
        return original(data, flags)

    monkeypatch.setattr(image_io.cv2, 'imdecode', recording)
    return paths


def test_images_beyond_the_size_limits_are_refused_from_their_header_and_the_others_scored(
        tiny_clip_path, tmp_path, capsys, decoded):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    _image(folder / 'a_ok.png', 32, 32)
    _image(folder / 'b_big.png', 160, 160)  # 25,600 pixels > --max-pixels 20000
    _image(folder / 'c_strip.png', 16, 1000)  # 16,000 pixels, aspect 62.5:1 > 32:1
    output = tmp_path / 'scores.csv'
    status = main([str(folder), '-o', str(output), '--max-pixels', '20000', '--pretrained', tiny_clip_path,
                   '--device', 'cpu', '--workers', '0', '--no-progress'])
    assert status == 1
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [os.path.basename(row['path']) for row in rows] == ['a_ok.png', 'b_big.png', 'c_strip.png']
    assert rows[0]['error'] == '' and float(rows[0]['ddr']) > 0
    assert rows[1]['ddr'] == '' and rows[1]['error'] == (
        f'{folder / "b_big.png"}: 160x160 px is 25,600 pixels, more than the limit of 20,000 (--max-pixels)')
    assert rows[2]['ddr'] == '' and rows[2]['error'].startswith(
        f'{folder / "c_strip.png"}: 1000x16 px has an aspect ratio of 62.5:1, more than the limit of 32:1 '
        '(--max-aspect-ratio')
    assert len(decoded) == 1  # only a_ok.png reached the decoder
    assert 'b_big.png' in capsys.readouterr().err


def test_a_16x60000_strip_is_refused_before_decoding(tmp_path, decoded):
    path = str(_image(tmp_path / 'strip.png', 16, 60000))
    with pytest.raises(image_io.ImageTooLargeError, match=r'strip\.png: 60000x16 px has an aspect ratio of 3750\.0:1'):
        image_io.decode_image(path, max_pixels=100_000_000, max_aspect_ratio=32)
    assert decoded == []
    assert image_io.decode_image(path).shape == (16, 60000, 3)  # no limit: decoded as before


def test_an_image_out_of_memory_is_retried_alone_then_reported(tmp_path, tiny_clip_path, monkeypatch):
    ddr = DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')
    paths = [str(_image(tmp_path / f'{name}.png', 32, 32, seed)) for seed, name in enumerate(['a', 'huge', 'c'])]
    assert cv2.imwrite(paths[1], np.full((32, 32, 3), 255, np.uint8))  # the one that does not fit
    original = scoring.score_images
    batch_sizes = []

    def running_out(ddr, images):
        batch_sizes.append(len(images))
        if len(images) > 1 or bool((images[0] == 255).all()):
            raise torch.OutOfMemoryError('CUDA out of memory')
        return original(ddr, images)

    monkeypatch.setattr(scoring, 'score_images', running_out)
    results = {os.path.basename(r.path): r for r in iter_quality_scores(ddr, paths, batch_size=3, workers=0,
                                                                        progress=False)}
    assert batch_sizes == [3, 1, 1, 1]
    assert results['huge.png'].error == f'{paths[1]}: out of memory scoring 32x32 px; use --short-side or a lower ' \
                                        '--max-pixels'
    assert results['a.png'].error == results['c.png'].error == '' and results['c.png'].quality > 0


@pytest.mark.parametrize('pattern', [None, '**/*.png'])
def test_symlink_loops_end_and_list_each_file_once(tmp_path, monkeypatch, pattern):
    root = tmp_path / 'photos'
    (root / 'sub').mkdir(parents=True)
    _image(root / 'a.png', 20, 20)
    _image(root / 'sub' / 'b.png', 20, 20)
    os.symlink('.', root / 'loop1')  # two self-referencing folders: glob's '**' walks 2^depth paths
    os.symlink('..', root / 'sub' / 'loop2')
    os.symlink('a.png', root / 'again.png')  # the same file under another name
    os.symlink('self.png', root / 'self.png')  # a link to itself
    monkeypatch.chdir(root)
    inputs = [pattern] if pattern else ['.']
    rows = collect_input_rows(inputs, recursive=True)
    assert sorted(os.path.basename(path) for path, _, _ in rows) == ['a.png', 'b.png']
    assert sorted(real for _, real, _ in rows) == [os.path.realpath(root / name) for name in ('a.png', 'sub/b.png')]
    assert all(problem == '' for _, _, problem in rows)


def _refuse_directory(tmp_path, inputs):
    (tmp_path / 'out').mkdir()
    return str(tmp_path / 'out'), 'out is a folder; give a file name'


def _refuse_input_image(tmp_path, inputs):
    return inputs[0], 'is one of the input images; it would be overwritten'


def _refuse_input_through_a_symlink(tmp_path, inputs):
    os.symlink(inputs[0], tmp_path / 'alias.png')
    return str(tmp_path / 'alias.png'), 'is one of the input images'


def _refuse_a_file_as_folder(tmp_path, inputs):
    (tmp_path / 'notes.txt').write_text('keep me')
    return str(tmp_path / 'notes.txt' / 'scores.csv'), 'notes.txt is a file, not a folder'


def _refuse_a_file_where_shards_go(tmp_path, inputs):
    (tmp_path / 'scores.csv.shards').write_text('keep me')
    return str(tmp_path / 'scores.csv'), 'scores.csv.shards (where the shards go) is a file'


@pytest.mark.parametrize('make_output', [_refuse_directory, _refuse_input_image, _refuse_input_through_a_symlink,
                                         _refuse_a_file_as_folder, _refuse_a_file_where_shards_go])
def test_bad_outputs_are_refused_before_the_model_loads(tmp_path, capsys, monkeypatch, make_output):
    images = tmp_path / 'imgs'
    images.mkdir()
    inputs = [str(_image(images / 'a.png', 20, 20)), str(_image(images / 'b.png', 20, 20, seed=1))]
    output, message = make_output(tmp_path, inputs)
    before = _snapshot(tmp_path)
    monkeypatch.setattr('ddr_basicsr.score.ddr_from_arguments', lambda args: pytest.fail('the model was loaded'))
    assert main([*inputs, '-o', output, '--device', 'cpu']) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'ddr-score: error: --output {output}') and message in error
    assert _snapshot(tmp_path) == before  # nothing written, moved or overwritten


def test_a_missing_files_from_list_names_the_option(tmp_path, capsys):
    assert main(['--files-from', str(tmp_path / 'list.txt'), '--device', 'cpu']) == 2
    assert capsys.readouterr().err.startswith(f'ddr-score: error: --files-from {tmp_path / "list.txt"}: ')
