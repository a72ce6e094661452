"""scripts/reproduce.py (ddr_basicsr.paper) end to end on miniature datasets, in-process: every sub-command writes
its table / figure with the paper's numbers beside ours; the reference CPBD, ICNet's layout and weight errors."""
import csv
import functools
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import savemat

from ddr_basicsr.core import ddr as ddr_module
from ddr_basicsr.iqa import evaluation, scoring
from ddr_basicsr.iqa.evaluation import PAPER_TABLE3, srcc
from ddr_basicsr.paper import cli, crops, fig1, fig7, icnet, table1, table2, table3
from ddr_basicsr.paper.common import ModelChoice
from ddr_basicsr.paper.numbers import TABLE3, TABLE8
from test_iqa_datasets import LIVE_FOLDERS, WRITERS, write_image

LIVE_IMAGES = ['gblur/img1.bmp', 'gblur/img2.bmp', 'gblur/img3.bmp', 'gblur/img4.bmp', 'jpeg/img1.bmp']


def write_live_blur(root):
    """LIVE with four Gaussian-blur images and one JPEG image (the other 977 entries are reference copies)."""
    names = [f'{folder}/img{k}.bmp' for folder, count in LIVE_FOLDERS for k in range(1, count + 1)]
    orgs = np.array([[0 if name in LIVE_IMAGES else 1 for name in names]], dtype=np.float64)
    dmos = np.linspace(10, 80, len(names))[None]
    os.makedirs(root, exist_ok=True)
    savemat(os.path.join(root, 'dmos_realigned.mat'), {'dmos_new': dmos, 'dmos_std': dmos, 'orgs': orgs})
    for seed, name in enumerate(LIVE_IMAGES):
        write_image(os.path.join(root, name), seed, (32, 40))


@pytest.fixture(autouse=True, scope='module')
def small_and_fast():
    """Every DDR of this module shares one load of the tiny CLIP (frozen, so sharing is safe: ~1 s per DDR saved)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(ddr_module, 'load_clip', functools.lru_cache()(ddr_module.load_clip))
    yield
    patch.undo()


@pytest.fixture(scope='module')
def small_icnet():
    """A randomly initialised ICNet at the authors' size1/size2 made small (64/32 px): the parameters of theirs."""
    return icnet.ICNet(input_size=64, context_size=32).eval().requires_grad_(False)


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('datasets')
    write_live_blur(str(base / 'live'))
    for name in ('livec', 'tid2013', 'koniq10k'):
        WRITERS[name](str(base / name), (32, 40))
    WRITERS['csiq'](str(base / 'csiq'), (64, 64))
    return {name: str(base / name) for name in ('live', 'livec', 'tid2013', 'koniq10k', 'csiq')}


def _root_args(roots):
    return [argument for name, root in roots.items() for argument in ('--root', f'{name}={root}')]


def _clip_args(tiny_clip_path):
    return ['--pretrained', tiny_clip_path, '--device', 'cpu', '--workers', '0', '--batch-size', '8']


def _model(tiny_clip_path):
    return ModelChoice(pretrained=tiny_clip_path, device='cpu', workers=0, batch_size=8)


def _rows(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def scored(monkeypatch):
    """Number of images that reach a DDR model."""
    count = []
    original = scoring.score_images

    def counting(ddr, images):
        count.extend(images)
        return original(ddr, images)

    monkeypatch.setattr(scoring, 'score_images', counting)
    return count


def test_table1_sweeps_the_blur_subset_and_resumes(roots, tiny_clip_path, tmp_path, capsys, scored):
    arguments = ['table1', '--output-dir', str(tmp_path), '--sigmas', '1,4', *_root_args(roots),
                 *_clip_args(tiny_clip_path)]
    assert cli.main(arguments) == 0
    assert len(scored) == 2 * 4  # two levels x the four gblur images (the JPEG image is not in the subset)
    printed = capsys.readouterr().out
    assert '| HOSA (quoted) |  | 0.9540 |  |' in printed and 'σ = 4 px' in printed
    rows = _rows(tmp_path / 'table1.csv')
    ddr_rows = [row for row in rows if row['Method'].startswith('DDR_blur, σ')]
    held_out = [row for row in rows if 'held-out' in row['Method']]
    assert len(ddr_rows) == 2 and all(row['SRCC (paper)'] == '0.988000' for row in ddr_rows)
    for row in ddr_rows:
        assert float(row['Difference']) == pytest.approx(float(row['SRCC (ours)']) - 0.988, abs=2e-6)
    assert sum('(optimal, in-sample)' in row['Method'] for row in ddr_rows) == 1
    assert [row['Method'].split(': ')[0] for row in held_out] == ['DDR_blur, held-out'] * 2
    assert 'chosen on the even half, SRCC on the odd half' in held_out[0]['Method']
    assert 'ω_d grid (σ, px): 1, 4' in (tmp_path / 'table1.md').read_text()
    assert cli.main(arguments) == 0
    assert len(scored) == 8  # resumed from the cache: nothing scored again


def test_held_out_level_is_chosen_on_one_half_and_scored_on_the_other():
    subjective = [1, 2, 3, 4, 5, 6, 7, 8]
    # level 1 ranks the even positions right and the odd ones backwards; level 2 the other way round
    values = {1.0: [1, 8, 3, 6, 5, 4, 7, 2], 2.0: [8, 2, 6, 4, 4.5, 6.5, 2.5, 8.5]}
    first, second = table1.held_out_levels(values, subjective, 1)
    assert (first.chosen_on, first.scored_on, first.level) == ('even', 'odd', 1.0)
    assert (second.chosen_on, second.scored_on, second.level) == ('odd', 'even', 2.0)
    assert first.srcc == pytest.approx(-1.0) and second.srcc == pytest.approx(-1.0)  # in-sample both were +1
    assert table1.best_level({level: srcc(scores[0::2], subjective[0::2]) for level, scores in values.items()}) == 1.0
    flipped = table1.held_out_levels(values, subjective[::-1], -1)
    assert [held.srcc for held in flipped] == pytest.approx([-1.0, -1.0])


def test_fig2_histograms_low_optimal_high_and_adaptive(roots, tiny_clip_path, tmp_path):
    assert cli.main(['fig2', '--output-dir', str(tmp_path), '--sigmas', '0.5,8', *_root_args(roots),
                     *_clip_args(tiny_clip_path)]) == 0
    rows = {row['DDR']: row for row in _rows(tmp_path / 'fig2.csv')}
    assert set(rows) == {'low', 'optimal', 'high', 'adaptive', 'all σ: 0.5 px', 'all σ: 8 px',
                         'held-out optimal (even → odd)', 'held-out optimal (odd → even)'}
    assert 'chosen in-sample' in rows['optimal']['setting']
    title = (tmp_path / 'fig2.md').read_text().splitlines()[0]
    assert 'pixel-domain DDR with D = {blur}' in title and 'D = {color, noise, blur, exposure}' in title
    assert 'σ = 0.5 px' in rows['low']['setting'] and 'σ = 8 px' in rows['high']['setting']
    assert 'adaptation on' in rows['adaptive']['setting']
    assert cv2.imread(str(tmp_path / 'fig2.png')) is not None
    assert 'Paper (no values printed): Fig. 2' in (tmp_path / 'fig2.md').read_text()


def test_trunk_weights_errors_name_the_command_line_options(roots, tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError('no network')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
    assert cli.main(['fig1', '--output-dir', str(tmp_path), *_root_args(roots)]) == 2
    error = capsys.readouterr().err
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints' / 'alexnet-owt-7be5be79.pth'
    assert f'the torchvision alexnet ImageNet weights are not at {cache} and could not be downloaded (no network)' \
        in error and 'or pass --lpips-weights /path/to/alexnet-owt-7be5be79.pth' in error
    assert 'weights_path' not in error
    assert cli.main(['fig1', '--output-dir', str(tmp_path), '--lpips-weights', str(tmp_path / 'x.pth'),
                     *_root_args(roots)]) == 2
    assert f'--lpips-weights {tmp_path / "x.pth"}: no such file' in capsys.readouterr().err
    assert cli.main(['fig7', '--output-dir', str(tmp_path), *_root_args(roots), '--pretrained', 'none']) == 2
    assert 'or pass --vgg-weights /path/to/vgg19-dcbb9e9d.pth' in capsys.readouterr().err


def test_clip_label_and_weights_hint_name_the_architecture(tiny_clip_path, monkeypatch):
    import open_clip

    from ddr_basicsr.core.clip_loading import ClipWeightsError, load_clip
    monkeypatch.setattr(ddr_module, 'load_clip', load_clip)  # not the module's shared cache: the label is under test
    with pytest.raises(ClipWeightsError) as error:
        load_clip('RN50x16', '/does/not/exist.pt')
    assert '--pretrained /path/to/RN50x16.pt' in error.value.command_line_message()
    assert "DDR(pretrained='/path/to/RN50x16.pt')" in str(error.value) and 'ViT-B-32' not in str(error.value)
    assert load_clip('RN50x16', tiny_clip_path).description.startswith('ViT CLIP (width 128, layers 2, patch_size 32')
    tiny = {'embed_dim': 64, 'vision_cfg': {'width': 128, 'layers': 2, 'patch_size': 32, 'image_size': 224}}
    configs = open_clip.get_model_config
    monkeypatch.setattr(open_clip, 'list_models', lambda: ['RN50x16', 'ViT-B-32', 'Tiny-ViT'])
    monkeypatch.setattr(open_clip, 'get_model_config', lambda name: tiny if name == 'Tiny-ViT' else configs(name))
    assert load_clip('RN50x16', tiny_clip_path).description == \
        f'Tiny-ViT (OpenAI-format weights from {tiny_clip_path})'
    model = ModelChoice(model='RN50x16', pretrained=tiny_clip_path, device='cpu')
    assert model.clip_label == f'RN50x16 ({tiny_clip_path})'
    model.ddr(degradations=['blur'])
    assert model.clip_label.startswith('Tiny-ViT (OpenAI-format')


def test_fig1_lpips_of_two_images(roots, tmp_path):
    report = fig1.fig1(roots, str(tmp_path), sigma=3.0, pretrained=False)
    report.write(str(tmp_path))
    rows = _rows(tmp_path / 'fig1.csv')
    assert [row['image'] for row in rows] == ['10.bmp', '100.bmp'] and all(float(row['LPIPS l(x, x_d)']) > 0
                                                                           for row in rows)
    assert cv2.imread(str(tmp_path / 'fig1.png')) is not None
    assert 'trunk weights: random' in (tmp_path / 'fig1.md').read_text()


def test_table2_with_random_icnet(roots, tiny_clip_path, tmp_path, small_icnet):
    report = table2.table2(roots, str(tmp_path), _model(tiny_clip_path), random_icnet_for_tests=small_icnet)
    markdown = report.write(str(tmp_path))
    rows = {row['Degradation']: row for row in _rows(tmp_path / 'table2.csv')}
    assert list(rows) == ['color', 'noise', 'blur', 'exposure', 'content']
    assert rows['noise']['Complexity (paper)'] == '-0.444000' and rows['blur']['Sharpness (paper)'] == '0.732000'
    assert -1 <= float(rows['color']['Quality (ours)']) <= 1
    assert 'weights: random weights (tests only)' in markdown and 'Canny edges pick the 64-px edge blocks' in markdown


def test_table2_without_icnet_weights_says_where_to_put_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    assert cli.main(['table2', '--output-dir', str(tmp_path), '--pretrained', 'none']) == 2
    error = capsys.readouterr().err
    expected = os.path.join(str(tmp_path / 'torch'), 'hub', 'checkpoints', icnet.ICNET_FILE)
    assert f'IC9600 ICNet weights not found at {expected}. Download ck.pth from' in error
    assert '--icnet-weights /path/to/ck.pth' in error


def test_table3_ddr_with_quoted_baselines(roots, tiny_clip_path, tmp_path):
    assert cli.main(['table3', '--output-dir', str(tmp_path), '--datasets', 'csiq,livec', '--baselines', 'none',
                     *_root_args(roots), *_clip_args(tiny_clip_path)]) == 0
    rows = {row['Dataset']: row for row in _rows(tmp_path / 'table3.csv')}
    assert list(rows) == ['csiq', 'livec'] and rows['csiq']['Images'] == '6'
    assert rows['livec']['DDR (paper)'] == '0.661300' and rows['csiq']['ContentSep (quoted)'] == '0.587100'
    assert 'NIQE (ours)' not in rows['csiq']
    assert 'baselines run: none' in (tmp_path / 'table3.md').read_text()


def test_an_unreadable_image_is_reported_and_exits_1(tiny_clip_path, tmp_path, capsys):
    WRITERS['livec'](str(tmp_path / 'livec'), (32, 40))
    (tmp_path / 'livec' / 'Images' / '100.bmp').write_bytes(b'not an image')
    assert cli.main(['table3', '--output-dir', str(tmp_path / 'out'), '--datasets', 'livec', '--baselines', 'none',
                     '--root', f'livec={tmp_path / "livec"}', *_clip_args(tiny_clip_path)]) == 1
    assert '- ddr failed on Images/100.bmp: ' in capsys.readouterr().out


def test_table3_pyiqa_piqe_runs_and_ilniqe_offline_error(roots, tmp_path, tiny_clip_path, monkeypatch):
    pytest.importorskip('pyiqa', reason='pyiqa is an optional extra (pip install ddr-basicsr[iqa])')
    report = table3.table3(roots, str(tmp_path), _model(tiny_clip_path), ['csiq'], ['piqe'])
    row = dict(zip(report.header, report.rows[0]))
    assert not math.isnan(row['PIQE (ours)']) and row['PIQE (paper)'] == 0.5120
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr('pyiqa.utils.download_util.DEFAULT_CACHE_DIR', str(tmp_path / 'torch' / 'hub' / 'pyiqa'))
    with pytest.raises(table3.BaselineUnavailable, match='Offline[?] Download ILNIQE_templateModel.mat .* put it at '
                                                         + str(tmp_path / 'torch' / 'hub' / 'pyiqa')):
        table3.pyiqa_metric('ilniqe')
    with pytest.raises(ValueError, match="unknown baseline\\(s\\) \\['brisque'\\]; choose among niqe, ilniqe, piqe"):
        table3.table3(roots, str(tmp_path), _model(tiny_clip_path), ['csiq'], ['brisque'])


def test_table3_niqe_is_the_niqe_of_eval_biqa(tiny_clip_path, tmp_path):
    """One NIQE: table3's per-image NIQE equals eval_biqa.py's (evaluation.niqe_of_file) on the same images."""
    WRITERS['livec'](str(tmp_path / 'livec'), (100, 200))
    roots = {'livec': str(tmp_path / 'livec')}
    report = table3.table3(roots, str(tmp_path / 'table3'), _model(tiny_clip_path), ['livec'], ['niqe'])
    assert 'NIQE = ddr_basicsr.iqa.evaluation.niqe_score (BasicSR calculate_niqe' in report.markdown()
    evaluation.evaluate([('livec', roots['livec'])], str(tmp_path / 'biqa'), ['niqe'])
    with open(tmp_path / 'biqa' / 'scores_livec.csv', newline='') as handle:
        biqa = {row['image']: float(row['niqe']) for row in csv.DictReader(handle)}
    cache = next((tmp_path / 'table3' / 'cache').glob('table3-livec-niqe-*.jsonl'))
    ours = {record['image']: record['score'] for record in map(json.loads, cache.read_text().splitlines()[1:])}
    assert len(ours) == len(biqa) >= 3
    assert all(ours[image] == pytest.approx(biqa[image], rel=1e-6) for image in biqa)


def test_table8_rows_adaptation_and_backbones(roots, tiny_clip_path, tmp_path):
    assert cli.main(['table8', '--output-dir', str(tmp_path), '--rows', '9,12,13', *_root_args(roots),
                     *_clip_args(tiny_clip_path), '--backbone-weights', f'RN50x16={tiny_clip_path}',
                     '--backbone-weights', f'RN50x64={tmp_path / "missing.pt"}']) == 0
    rows = _rows(tmp_path / 'table8.csv')
    assert [(row['Row'], row['D'], row['Backbone'], row['Adaptation']) for row in rows] == [
        ('9', '{color, blur, noise, exposure}', 'ViT-B-32', 'off'),
        ('12', '{color, blur, noise, exposure}', 'RN50x16', 'on'),
        ('13', '{color, blur, noise, exposure}', 'RN50x64', 'on')]
    assert rows[0]['csiq (paper)'] == '0.607400' and rows[1]['koniq10k (paper)'] == '0.612500'
    assert len(os.listdir(tmp_path / 'cache')) == 2 * 4  # one per row and dataset: the adaptation is in the key
    markdown = (tmp_path / 'table8.md').read_text()
    tiny = f'ViT CLIP (width 128, layers 2, patch_size 32, image_size 224, embedding 64; no open_clip model has this ' \
           f'shape) (OpenAI-format weights from {tiny_clip_path})'
    assert f'RN50x16: {tiny}' in markdown and f'- row 12 asked for RN50x16; the weights loaded are {tiny}' in markdown
    assert 'Download the RN50x64 checkpoint elsewhere and pass it: --backbone-weights RN50x64=/path/to/RN50x64.pt' \
        in markdown and 'ViT-B-32.pt' not in markdown
    assert len(TABLE8) == 13


def test_fig7_vgg_statistics_with_random_vgg(roots, tiny_clip_path, tmp_path):
    report = fig7.fig7(roots, str(tmp_path), _model(tiny_clip_path), 'livec', vgg_pretrained=False)
    markdown = report.write(str(tmp_path))
    choices = 'VGG19 and livec are our choices: the paper names neither the VGG depth nor the dataset'
    assert f'Ours: {choices}.' in markdown and f'- choices: {choices}' in markdown
    assert 'torchvision VGG19 features (our choice of depth' in markdown
    rows = _rows(tmp_path / 'fig7.csv')
    assert len(rows) == 10 and {row['statistic'] for row in rows} == {'mean', 'std'}
    assert all(-1 <= float(row['relu5_1']) <= 1 for row in rows)
    assert cv2.imread(str(tmp_path / 'fig7.png')) is not None


OPTIONS = Path(__file__).resolve().parents[1] / 'options'


def _trained_run(root, name, stem, command, last_iter):
    """experiments/<name>/ as BasicSR leaves it: the option file copy (with its command line) and a training log."""
    folder = root / 'experiments' / name
    folder.mkdir(parents=True)
    (folder / f'{stem}.yml').write_text(f'# GENERATE TIME: x\n# CMD:\n# {command}\n\n'
                                        + (OPTIONS / f'{stem}.yml').read_text())
    (folder / f'train_{name}_1.log').write_text(f'x INFO: [NAFNe..][epoch:  9, iter: {last_iter:,}, lr:(1.0e-07,)]\n')


def test_tables4_6_collects_test_logs_and_validation(tmp_path, capsys):
    test_log = tmp_path / 'results' / 'NAFNet_GoPro_DDR' / 'test_NAFNet_GoPro_DDR_20240101_000000.log'
    test_log.parent.mkdir(parents=True)
    test_log.write_text('2024-01-01 00:00:00,000 INFO: Loading NAFNetLocal model\n'
                        '2024-01-01 00:10:00,000 INFO: Validation GoPro-test\n'
                        '\t # psnr: 33.4000\n\t # ssim: 0.9512\n\n')
    _trained_run(tmp_path, 'NAFNet_GoPro_DDR', 'nafnet_gopro_ddr',
                 'ddr_basicsr/train.py -opt options/nafnet_gopro_ddr.yml --force_yml '
                 'datasets:train:dataroot_gt=/data/GoPro/train/sharp_crops.lmdb num_gpu=2', 200000)
    name = 'Restormer_RealBlur-J_PSNR'
    _trained_run(tmp_path, name, 'restormer_realblur_psnr', 'ddr_basicsr/train.py -opt x.yml --force_yml '
                 'network_g:dim=8 train:total_iter=40000 --auto_resume', 40000)
    (tmp_path / 'experiments' / name / f'train_{name}_1.log').write_text(
        'x INFO: Validation RealBlur-J-test\n\t # psnr: 30.0000\tBest: 30.0000 @ 20000 iter\n'
        '\t # ssim: 0.9000\tBest: 0.9000 @ 20000 iter\n\n'
        'x INFO: [Resto..][epoch:  1, iter:  40,000, lr:(1.0e-04,)]\n'
        'x INFO: Validation RealBlur-J-test\n\t # psnr: 31.5000\tBest: 31.5000 @ 40000 iter\n'
        '\t # ssim: 0.9100\tBest: 0.9100 @ 40000 iter\n\n')
    _trained_run(tmp_path, 'NAFNet_GoPro_PSNR', 'nafnet_gopro_psnr', 'train.py --force_yml train:nope:x=1', 200000)
    (tmp_path / 'experiments' / 'NAFNet_GoPro_PSNR' / 'train_NAFNet_GoPro_PSNR_1.log').write_text(
        'x INFO: Validation GoPro-test\n\t # psnr: 33.0000\n\t # ssim: 0.9400\n\n')
    logs_only = tmp_path / 'experiments' / 'NAFNet_RealSR-City100_PSNR'
    logs_only.mkdir(parents=True)
    (logs_only / 'train_NAFNet_RealSR-City100_PSNR_1.log').write_text(
        'x INFO: Validation RealSR-City100-test\n\t # psnr: 29.0000\n\t # ssim: 0.8000\n\n')
    assert cli.main(['tables4-6', '--output-dir', str(tmp_path / 'out'), '--results-root', str(tmp_path)]) == 0
    rows = _rows(tmp_path / 'out' / 'tables4-6.csv')
    assert len(rows) == 36 + 10
    gopro = [row for row in rows if row['Loss / setting'] == 'PSNR + DDR(ours)' and row['Dataset'] == 'GoPro'
             and row['Model'] == 'NAFNet'][0]
    assert (gopro['PSNR (ours)'], gopro['PSNR (paper)'], gopro['PSNR (diff)']) == ('33.400000', '33.342700',
                                                                                 '0.057300')
    assert gopro['Source'].startswith('ddr-test: results/NAFNet_GoPro_DDR/')
    realblur = [row for row in rows if row['Dataset'] == 'RealBlur-J' and row['Model'] == 'Restormer'
                and row['Loss / setting'] == 'PSNR'][0]
    assert (realblur['PSNR (ours)'], realblur['SSIM (paper)']) == ('', '0.909800')
    assert realblur['Source'].startswith('not counted: the run differs from options/')
    assert rows[-1]['Table'] == 'Table 6' and rows[-1]['PSNR (ours)'] == '33.400000'
    printed = capsys.readouterr().out
    assert '44 of 46 experiments have no result yet' in printed
    unapplied, restormer, logs_only = [line for line in printed.splitlines() if line.startswith('- Listed apart')]
    assert "NAFNet_GoPro_PSNR: PSNR 33.0000 / SSIM 0.9400" in unapplied
    assert "its command line's --force_yml train:nope:x=1 cannot be applied" in unapplied
    assert 'Restormer_RealBlur-J_PSNR: PSNR 31.5000 / SSIM 0.9100 (last validation' in restormer
    assert "network_g {'type': 'Restormer', 'inp_channels': 3" in restormer and "'dim': 8" in restormer
    assert "total_iter 40000 is not the option file's 300000" in restormer
    assert 'its training log reaches iteration 40000 of 300000' in restormer
    assert 'no copy of its option file in experiments/NAFNet_RealSR-City100_PSNR/' in logs_only


def test_crops_side_by_side(tmp_path, capsys):
    base = np.zeros((40, 50, 3), dtype=np.uint8)
    base[10:20, 20:30] = 200
    paths = {}
    for label, offset in (('GT', 0), ('PSNR', 10), ('DDR', 2)):
        paths[label] = str(tmp_path / f'{label}.png')
        cv2.imwrite(paths[label], base + offset)
    arguments = ['crops', '--output-dir', str(tmp_path), '--box', '20,10,10,8', '--scale', '3', '--name', 'fig5',
                 '--reference', 'GT'] + [f'--image={label}={path}' for label, path in paths.items()]
    assert cli.main(arguments) == 0
    figure = cv2.imread(str(tmp_path / 'fig5.png'))
    assert figure.shape[0] == 8 * 3 + crops.LABEL_HEIGHT
    assert figure.shape[1] == 10 * 3 + 3 * (10 * 3) + 3 * crops.GAP  # overview (50x40 scaled to 24 px high) + 3
    rows = {row['label']: row for row in _rows(tmp_path / 'fig5.csv')}
    assert float(rows['PSNR']['crop PSNR vs reference (dB)']) == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert cli.main(arguments[:3] + ['--box', '45,10,10,8'] + arguments[5:]) == 2
    assert '--box 45,10,10,8 leaves the 50x40 image' in capsys.readouterr().err


def test_icnet_layout_and_weights_round_trip(tmp_path, small_icnet):
    shapes = {key: tuple(value.shape) for key, value in small_icnet.state_dict().items()}
    assert shapes['b1_1.0.weight'] == (64, 3, 7, 7) and shapes['b1_2.0.conv1.weight'] == (128, 64, 3, 3)
    assert shapes['b2_4_slam.linear.0.weight'] == (512, 64) and shapes['up1.conv.weight'] == (256, 128, 1, 1)
    assert shapes['to_map.to_map.0.weight'] == (1, 512, 1, 1) and shapes['head.2.weight'] == (1, 512)
    path = tmp_path / 'ck.pth'  # the parameters do not depend on the input size: a checkpoint of the authors' shape
    torch.save({f'module.{key}': value.half() for key, value in small_icnet.state_dict().items()}, path)
    loaded = icnet.load_icnet(str(path))
    assert loaded.input_size == 512 and all(torch.equal(value, small_icnet.state_dict()[key].half().float())
                                            for key, value in loaded.state_dict().items() if value.is_floating_point())
    small = small_icnet
    with torch.no_grad():
        score, complexity_map = small(torch.rand(2, 3, 64, 64))
    assert score.shape == (2,) and complexity_map.shape == (2, 1, 8, 8) and bool(((score > 0) & (score < 1)).all())
    image = torch.rand(3, 40, 56)
    resized = torch.nn.functional.interpolate(image[None], size=(64, 64), mode='bilinear', antialias=True)
    normalised = (resized - torch.tensor(icnet.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        icnet.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = float(small(normalised)[0][0])
    assert icnet.complexity(small, image) == pytest.approx(expected, abs=1e-6)


def test_paper_numbers_agree_with_the_evaluation_module():
    assert TABLE3 is PAPER_TABLE3
