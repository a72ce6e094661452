"""Hostile and careless ``ddr-score`` input (issue 18): each case ends in a clear error naming the file or option,
or in the documented behaviour, and no file is lost or half-written."""
import csv
import errno
import io
import math
import os

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr.cli.score import main
from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.learned_prompts import PromptLearner, describe_backbone, save_prompt_file
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.iqa import scoring
from ddr_basicsr.iqa.scoring import iter_quality_scores
from ddr_basicsr.utils import image_io
from ddr_basicsr.utils.image_files import collect_input_rows


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


@pytest.mark.parametrize('out_of_memory', [
    lambda: torch.OutOfMemoryError('CUDA out of memory'),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                         'to allocate 805306368 bytes'),
    MemoryError], ids=['cuda', 'cpu-allocator', 'memory-error'])
def test_an_image_out_of_memory_is_retried_alone_then_reported(tmp_path, tiny_clip_path, monkeypatch, out_of_memory):
    ddr = DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')
    paths = [str(_image(tmp_path / f'{name}.png', 32, 32, seed)) for seed, name in enumerate(['a', 'huge', 'c'])]
    assert cv2.imwrite(paths[1], np.full((32, 32, 3), 255, np.uint8))  # the one that does not fit
    original = scoring.score_images
    batch_sizes = []

    def running_out(ddr, images):
        batch_sizes.append(len(images))
        if len(images) > 1 or bool((images[0] == 255).all()):
            raise out_of_memory()
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
    monkeypatch.setattr('ddr_basicsr.cli.score.ddr_from_arguments', lambda args: pytest.fail('the model was loaded'))
    assert main([*inputs, '-o', output, '--device', 'cpu']) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'ddr-score: error: --output {output}') and message in error
    assert _snapshot(tmp_path) == before  # nothing written, moved or overwritten


def test_a_missing_files_from_list_names_the_option(tmp_path, capsys):
    assert main(['--files-from', str(tmp_path / 'list.txt'), '--device', 'cpu']) == 2
    assert capsys.readouterr().err.startswith(f'ddr-score: error: --files-from {tmp_path / "list.txt"}: ')


# --------------------------------------------------------------------------- issue 27: ddr-score options and outputs
def _refuse_a_trailing_separator(tmp_path, inputs):
    return str(tmp_path / 'newres') + os.sep, 'ends with a separator (a folder); give a file name'


def _refuse_a_name_too_long(tmp_path, inputs):
    return str(tmp_path / ('s' * 240 + '.csv')), 'is too long for this file system'


@pytest.mark.parametrize('make_output', [_refuse_a_trailing_separator, _refuse_a_name_too_long])
def test_output_names_the_file_system_cannot_hold_are_refused_before_the_model_loads(tmp_path, capsys, monkeypatch,
                                                                                    make_output):
    test_bad_outputs_are_refused_before_the_model_loads(tmp_path, capsys, monkeypatch, make_output)


@pytest.mark.parametrize('option, content', [('--pretrained', b'weights'), ('--prompts', b'haze: [hazy, clear]\n'),
                                             ('--files-from', None)])
def test_an_output_that_is_the_file_of_an_option_is_refused(tmp_path, capsys, monkeypatch, option, content):
    image = str(_image(tmp_path / 'a.png', 20, 20))
    given = tmp_path / 'given.txt'
    given.write_bytes(content or f'{image}\n'.encode())
    before = _snapshot(tmp_path)
    monkeypatch.setattr('ddr_basicsr.cli.score.ddr_from_arguments', lambda args: pytest.fail('the model was loaded'))
    arguments = [] if option == '--files-from' else [image]
    assert main([*arguments, option, str(given), '-o', str(given), '--device', 'cpu']) == 2
    assert f'{given} is the {option} file; it would be overwritten' in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def _score(tiny_clip_path, *arguments):
    return main([*arguments, '--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', '--no-progress'])


def test_a_second_run_with_the_same_output_at_the_same_time_is_refused(tmp_path, tiny_clip_path, capsys):
    from ddr_basicsr.iqa import shards
    image = str(_image(tmp_path / 'a.png', 20, 20))
    output = tmp_path / 'scores.csv'
    held = shards.lock_run(shards.shards_folder(str(output)))  # another run, scoring
    assert _score(tiny_clip_path, image, '-o', str(output)) == 2
    assert f'another ddr-score run is writing it now ({output}.shards{os.sep}lock is locked)' in capsys.readouterr().err
    assert not output.exists()
    held.close()
    assert _score(tiny_clip_path, image, '-o', str(output)) == 0 and output.exists()


def test_a_file_system_without_locks_runs_unlocked(tmp_path, tiny_clip_path, monkeypatch):
    from ddr_basicsr.utils import atomic_files

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, 'No locks available')

    monkeypatch.setattr(atomic_files.fcntl, 'flock', no_locks)
    output = tmp_path / 'scores.csv'
    assert _score(tiny_clip_path, str(_image(tmp_path / 'a.png', 20, 20)), '-o', str(output)) == 0 and output.exists()


def test_an_existing_output_keeps_its_mode(tmp_path, tiny_clip_path):
    image = str(_image(tmp_path / 'a.png', 20, 20))
    output = tmp_path / 'scores.csv'
    output.write_text('old\n')
    output.chmod(0o600)
    assert _score(tiny_clip_path, image, '-o', str(output)) == 0
    assert output.read_text().startswith('path,ddr') and (output.stat().st_mode & 0o777) == 0o600


def test_a_file_name_that_is_not_utf8_is_written_as_its_bytes(tmp_path, tiny_clip_path, capsysbinary):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    _image(folder / 'a.png', 20, 20)
    os.rename(folder / 'a.png', os.path.join(os.fsencode(folder), b'caf\xe9.png'))  # Latin-1, not UTF-8
    output = tmp_path / 'scores.csv'
    for _ in range(2):  # the first run and a re-run
        assert _score(tiny_clip_path, str(folder), '-o', str(output)) == 0
        assert os.fsencode(folder) + b'/caf\xe9.png,0.' in output.read_bytes()
    assert _score(tiny_clip_path, str(folder)) == 0
    assert b'/caf\xe9.png,0.' in capsysbinary.readouterr().out
    (tmp_path / 'list.txt').write_bytes(os.fsencode(folder) + b'/caf\xe9.png\n')
    assert _score(tiny_clip_path, '--files-from', str(tmp_path / 'list.txt')) == 0
    assert b'/caf\xe9.png,0.' in capsysbinary.readouterr().out


def test_an_unreadable_sub_folder_is_an_error_row(tmp_path, monkeypatch):
    _image(tmp_path / 'a.png', 20, 20)
    (tmp_path / 'locked').mkdir()
    _image(tmp_path / 'locked' / 'b.png', 20, 20)
    original = os.scandir

    def scandir(path):
        if os.path.basename(path) == 'locked':
            raise PermissionError(13, 'Permission denied', path)
        return original(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    rows = collect_input_rows([str(tmp_path)], recursive=True)
    assert [(os.path.basename(path), problem) for path, _, problem in rows] == [
        ('a.png', ''), ('locked', 'cannot list this folder (Permission denied); its images are not scored')]


@pytest.mark.parametrize('arguments, message', [
    (['--short-side', '-5'], '--short-side must be a positive number of pixels, got -5'),
    (['--max-aspect-ratio', 'nan'], '--max-aspect-ratio must be finite numbers >= 0 (0 = no limit)'),
    (['--max-aspect-ratio', 'inf'], '--max-aspect-ratio must be finite numbers >= 0'),
])
def test_option_values_that_would_disable_or_break_a_limit_are_refused(tmp_path, capsys, arguments, message):
    image = str(_image(tmp_path / 'a.png', 20, 20))
    with pytest.raises(SystemExit) as stop:
        main([image, *arguments, '--device', 'cpu'])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def _files_from_with_a_nul_byte(tmp_path):
    (tmp_path / 'list.txt').write_bytes(f'{tmp_path / "a.png"}\n'.encode() + b'b.png\x00\n')
    return ['--files-from', str(tmp_path / 'list.txt')], (
        f'--files-from {tmp_path / "list.txt"}: line 2 holds a NUL byte; expected one path a line')


def _prompts(text):
    def make(tmp_path):
        (tmp_path / 'prompts.yml').write_text(text)
        return [str(tmp_path / 'a.png'), '--prompts', str(tmp_path / 'prompts.yml')], \
            f'--prompts {tmp_path / "prompts.yml"}: '
    return make


def _device_meta(tmp_path):
    return [str(tmp_path / 'a.png'), '--device', 'meta'], "DDR cannot run on the 'meta' device"


def _pretrained_png(tmp_path):
    return [str(tmp_path / 'a.png'), '--pretrained', str(tmp_path / 'a.png')], (
        f'{tmp_path / "a.png"} cannot be read as CLIP weights: not a file of tensors written by torch.save')


@pytest.mark.parametrize('make, message', [
    (_files_from_with_a_nul_byte, ''),
    (_prompts('haze: [hazy, clear\n'), 'is not valid YAML/JSON: while parsing a flow sequence in'),
    (_prompts('{a: b}: [hazy, clear]\n'), 'is not valid YAML/JSON: while constructing a mapping found unhashable key'),
    (_prompts('"": [hazy, clear]\n'), "a degradation name must not be empty, got ''"),
    (_prompts('haze: 5\n'), "prompts['haze'] must be a pair (degraded, clean), got 5"),
    (_prompts('haze: [1, 2]\n'), 'a prompt must be a non-empty string, got 1'),
    (_device_meta, ''),
    (_pretrained_png, ''),
], ids=['nul-in-files-from', 'yaml-cut-short', 'yaml-unhashable-key', 'empty-prompt-name', 'prompt-is-a-number',
        'prompt-words-are-numbers', 'device-meta', 'pretrained-png'])
def test_unusable_option_files_and_values_are_named_before_scoring(tmp_path, tiny_clip_path, capsys, make, message):
    _image(tmp_path / 'a.png', 20, 20)
    arguments, expected = make(tmp_path)
    arguments = ['--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', *arguments]
    assert main([*arguments, '-o', str(tmp_path / 'scores.csv')]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'ddr-score: error: {expected}') and message in error
    assert 'Traceback' not in error and 'weights_only' not in error
    assert not (tmp_path / 'scores.csv').exists() and not (tmp_path / 'scores.csv.shards').exists()


def test_a_max_pixels_above_pils_own_limit_still_checks_the_header(tmp_path, monkeypatch, decoded):
    path = str(_image(tmp_path / 'big.png', 160, 160))
    monkeypatch.setattr(image_io.Image, 'MAX_IMAGE_PIXELS', 100)  # PIL refuses > 200 px without saying the size
    with pytest.raises(image_io.ImageTooLargeError, match=r'big\.png: 160x160 px is 25,600 pixels, more than the '
                                                          r'limit of 20,000 \(--max-pixels\)'):
        image_io.decode_image(path, max_pixels=20_000)
    strip = str(_image(tmp_path / 'strip.png', 16, 1000))
    with pytest.raises(image_io.ImageTooLargeError, match='aspect ratio of 62.5:1'):
        image_io.decode_image(strip, max_pixels=0, max_aspect_ratio=32)
    assert decoded == [] and image_io.Image.MAX_IMAGE_PIXELS == 100


def test_large_images_are_batched_within_a_pixel_budget(tmp_path, tiny_clip_path, monkeypatch):
    ddr = DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')
    paths = [str(_image(tmp_path / f'{index}.png', 32, 32, index)) for index in range(5)]
    original = scoring.score_images
    batch_sizes = []

    def recording(ddr, images):
        batch_sizes.append(len(images))
        return original(ddr, images)

    monkeypatch.setattr(scoring, 'score_images', recording)
    monkeypatch.setattr(scoring, 'MAX_BATCH_PIXELS', 2 * 32 * 32)  # two of these images per encoder call
    results = list(iter_quality_scores(ddr, paths, batch_size=32, workers=0, progress=False))
    assert batch_sizes == [2, 2, 1] and all(result.quality > 0 for result in results)


# --------------------------------------------------------------------------- issue 27: the DDR API
IMAGES = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def ddr(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')


def test_the_meta_device_is_refused(tiny_clip_path):
    with pytest.raises(ValueError, match="DDR cannot run on the 'meta' device"):
        DDR(pretrained=tiny_clip_path, device='meta')
    moved = DDR(pretrained=tiny_clip_path, device='cpu').to('meta')
    with pytest.raises(ValueError, match="DDR cannot run on the 'meta' device"):
        moved.score(IMAGES)


def test_a_half_precision_ddr_scores_its_input(ddr, tiny_clip_path):
    half = DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu').half()
    assert torch.allclose(half.score(IMAGES), ddr.score(IMAGES), atol=2e-2)


@pytest.mark.parametrize('scale, message', [
    (1e30, r'values from [0-9.e-]+ to 1e\+30, beyond ±1000; DDR expects images in \[0, 1\]'),
    (math.inf, 'contains NaN or Inf')])
def test_inputs_far_outside_the_unit_range_are_refused(ddr, scale, message):
    x = IMAGES.clone()
    x[0, 0, 0, 0] = scale
    with pytest.raises(ValueError, match=message):
        ddr.score(x)


@pytest.mark.parametrize('level', [math.nan, math.inf])
def test_a_pixel_level_that_is_not_finite_is_refused(tiny_clip_path, level):
    with pytest.raises(ValueError, match=rf"pixel_levels\['noise'\] must be a finite number, got {level}"):
        DDR(pretrained=tiny_clip_path, domain='pixel', pixel_levels={'noise': level}, device='cpu')


# --------------------------------------------------------------------------- issue 27: prompt files
def _prompt_file(ddr, path, edit=None):
    """A prompt file of ``ddr``'s prompts (untuned vectors), its content changed by ``edit``."""
    learner = PromptLearner(ddr.clip, ddr.tokenizer, ddr.prompts)
    save_prompt_file(str(path), learner, ddr.prompts, describe_backbone(ddr.clip, ddr.clip_description), {})
    if edit:
        content = torch.load(path, weights_only=True)
        edit(content)
        torch.save(content, path)
    return path


def _scale_context(factor):
    def edit(content):
        content['context'] = content['context'] * factor
    return edit


def _set(key, value):
    return lambda content: content.__setitem__(key, value)


@pytest.mark.parametrize('damage, message', [
    (lambda path: path.write_bytes(b''), 'is not a prompt file written by ddr-tune-prompts: the file is empty'),
    (lambda path: path.write_bytes(path.read_bytes()[:300]), 'is not a prompt file written by ddr-tune-prompts: '
                                                              'RuntimeError: PytorchStreamReader failed'),
    (lambda content: content.pop('prompts'), 'is damaged: no "prompts" entry'),
    (_set('prompts', {'blur': [1, 2]}), "is damaged: prompts['blur'] is [1, 2], not a pair of sentences"),
    (_scale_context(math.nan), 'is damaged: the context vectors hold NaN or Inf values'),
    (_scale_context(math.inf), 'is damaged: the context vectors hold NaN or Inf values'),
    (_scale_context(1e30), 'the context vectors give text features that are not finite'),
], ids=['empty', 'truncated', 'no-prompts', 'numeric-prompts', 'nan-context', 'inf-context', 'huge-context'])
def test_a_damaged_prompt_file_is_named(ddr, tiny_clip_path, tmp_path, capsys, damage, message):
    path = tmp_path / 'prompts.pt'
    if damage.__code__.co_varnames[:1] == ('path',):
        damage(_prompt_file(ddr, path))
    else:
        _prompt_file(ddr, path, damage)
    image = str(_image(tmp_path / 'a.png', 20, 20))
    assert _score(tiny_clip_path, image, '--prompts', str(path), '-o', str(tmp_path / 'scores.csv')) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'ddr-score: error: --prompts {path}: {path}') and message in error
    assert 'Traceback' not in error and not (tmp_path / 'scores.csv').exists()


def test_a_damaged_tuning_state_or_feature_cache_is_named(ddr, tmp_path):
    from ddr_basicsr.iqa.datasets import IQADataset
    from ddr_basicsr.iqa.prompt_tuning import TuningSettings, run_protocol
    (tmp_path / 'data').mkdir()
    items = tuple((str(_image(tmp_path / 'data' / f'{index}.png', 24, 24, index)), float(index)) for index in range(8))
    dataset = IQADataset('tiny', str(tmp_path / 'data'), items, higher_better=True, score_label='MOS')
    settings = TuningSettings(epochs=1, images_per_step=16, val_fraction=0.4)
    out = tmp_path / 'out'
    run_protocol(ddr, dataset, [], str(out), settings, progress=False)
    state = out / 'tuning_state.pt'
    state.write_bytes(state.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf'{state} is damaged \(RuntimeError: PytorchStreamReader failed .*\); '
                                         r'delete it \(the tuning starts again from epoch 0\) and run again'):
        run_protocol(ddr, dataset, [], str(out), settings, progress=False)
    cache = next((out / 'features').glob('tiny-*.pt'))
    torch.save({'settings': {}}, cache)
    with pytest.raises(ValueError, match=rf'{cache} is damaged \(entries are missing\); delete it \(its features are '
                                         r'computed again\)'):
        run_protocol(ddr, dataset, [], str(out), settings, progress=False)
