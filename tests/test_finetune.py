"""Fine-tunes of the official checkpoints (options/finetune/) and scripts/get_pretrained.py (CPU, offline)."""
import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from basicsr.archs import build_network

from ddr_basicsr import train as ddr_train
from ddr_basicsr.host.options import check_model_options, load_yaml
from ddr_basicsr.paper.cli import main as reproduce_main
from ddr_basicsr.paper.official_checkpoints import OFFICIAL_CHECKPOINTS, OfficialCheckpoint, fetch, run
from ddr_basicsr.tools.option_file_generator import FINETUNE_ITERS, FINETUNES
from tiny_training import logged_iterations, read_logs, write_options

REPO = Path(__file__).resolve().parents[1]
ARCH_KEYS = Path(__file__).parent / 'data' / 'archs'
KEY_LISTS = {'nafnet_width64': 'NAFNet-GoPro-width64', 'nafnet_width32': 'NAFNet-GoPro-width32',
             'restormer': 'Restormer-MotionDeblur'}


def official_entries(key_list: str):
    """[(name, shape)] of an official state dict (tests/data/archs)."""
    lines = (ARCH_KEYS / f'{key_list}.keys.tsv').read_text().splitlines()
    return [(name, tuple(int(size) for size in shape.split(','))) for name, shape, _ in
            (line.split('\t') for line in lines if line.strip() and not line.startswith('#'))]


@pytest.fixture(scope='module')
def width32_checkpoint(tmp_path_factory) -> Path:
    """A synthetic NAFNet-GoPro-width32.pth: the official names and shapes, small random values, key "params"."""
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=generator) * 0.02 for name, shape in
             official_entries('NAFNet-GoPro-width32')}
    path = tmp_path_factory.mktemp('pretrained') / 'NAFNet-GoPro-width32.pth'
    torch.save({'params': state}, path)
    return path


@pytest.mark.parametrize('stem', [f'{key}_gopro_{loss}' for key in FINETUNES for loss in ('ddr', 'psnr')])
def test_finetune_files_load_and_build_the_official_networks(stem):
    path = REPO / 'options' / 'finetune' / f'{stem}.yml'
    opt = load_yaml(str(path))
    key = stem.split('_gopro_')[0]
    header = path.read_text().split('\n\n')[0]
    assert 'Schedule: 20000 iterations' in header and 'a tenth of the official' in header
    assert opt['path']['pretrain_network_g'].endswith(FINETUNES[key]['official'][6])
    assert opt['path']['strict_load_g'] is True and opt['path']['param_key_g'] == 'params'
    assert opt['val']['val_at_start'] is True and opt['train']['total_iter'] == FINETUNE_ITERS
    assert ('ddr_opt' in opt['train']) == stem.endswith('_ddr')
    check_model_options(opt, is_train=True)
    with torch.device('meta'):
        net = build_network(dict(opt['network_g']))
    assert [(name, tuple(t.shape)) for name, t in net.state_dict().items()] == official_entries(KEY_LISTS[key])


def test_synthetic_official_checkpoint_loads_strictly_and_finetunes(width32_checkpoint, dataset_root, tiny_clip_path,
                                                                    tmp_path):
    opt = load_yaml(str(REPO / 'options' / 'finetune' / 'nafnet_width32_gopro_ddr.yml'))
    opt['num_gpu'] = 0
    for phase, split in (('train', 'train'), ('val', 'val')):
        opt['datasets'][phase].update({'dataroot_gt': str(dataset_root / split / 'gt'), 'io_backend': {'type': 'disk'},
                                       'dataroot_lq': str(dataset_root / split / 'lq')})
    opt['datasets']['train'].update({'gt_size': 32, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0})
    opt['path']['pretrain_network_g'] = str(width32_checkpoint)
    opt['train'].update({'total_iter': 2, 'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': 2, 'eta_min': 1e-7}})
    opt['train']['ddr_opt']['pretrained'] = tiny_clip_path
    opt['val']['val_freq'] = 1000  # validated at iteration 0 and after the last one only
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 1000, 'use_tb_logger': False}
    options = write_options(tmp_path / 'finetune.yml', json.loads(json.dumps(opt)))  # plain dicts for safe_dump
    ddr_train.main(['-opt', options, '--root', str(tmp_path)])

    experiment = tmp_path / 'experiments' / 'NAFNet-width32_GoPro_finetune_DDR'
    log = read_logs(experiment)
    assert f'Loading NAFNetLocal model from {width32_checkpoint}, with param key: [params]' in log
    assert 'Validation GoPro-test' in log and '@ 0 iter' in log  # the starting point opens the log
    assert logged_iterations(log) == [1, 2] and 'l_ddr:' in log
    start = torch.load(width32_checkpoint, weights_only=True)['params']
    tuned = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert list(tuned) == list(start) and not all(torch.equal(tuned[name], start[name]) for name in start)

    assert reproduce_main(['finetunes', '--output-dir', str(tmp_path / 'report'), '--results-root', str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / 'report' / 'finetunes.csv').open()))
    assert [(row['Model'], row['Losses']) for row in rows[2:4]] == [('NAFNet-width32', 'PSNR + DDR(ours)'),
                                                                    ('NAFNet-width32', 'PSNR')]
    first, last = (re.findall(r'# psnr: ([\d.]+)', log)[index] for index in (0, -1))
    assert (rows[2]['PSNR (start)'], rows[2]['PSNR (fine-tuned)']) == (f'{float(first):.6f}', f'{float(last):.6f}')
    assert rows[2]['Source'].startswith('last validation') and rows[3]['Source'].startswith('not found')


def test_get_pretrained_downloads_verifies_checksum_and_explains_offline(tmp_path):
    source = tmp_path / 'source.pth'
    source.write_bytes(b'weights')
    digest = hashlib.sha256(b'weights').hexdigest()
    entry = OfficialCheckpoint('model.pth', 'a model', 'https://example.org/model', (source.as_uri(),), sha256=digest)
    folder = tmp_path / 'pretrained'
    assert list(fetch(str(folder), [entry], offline=True)) == [(False, (
        f'model.pth (a model) is missing: download it from https://example.org/model ({source.as_uri()}) and place '
        f'it at {folder / "model.pth"}, then run this again to verify it.'))]
    assert list(fetch(str(folder), [entry])) == [(True, f'{folder / "model.pth"}: sha256 {digest} matches the '
                                                        'published checksum')]
    (folder / 'model.pth').write_bytes(b'tampered')
    [(ok, line)] = fetch(str(folder), [entry])
    assert not ok and 'differs from the published' in line and 'delete it and download it again' in line


def test_get_pretrained_verifies_unpublished_checksums_by_strict_loading(width32_checkpoint, tmp_path):
    assert all(item.sha256 is None for item in OFFICIAL_CHECKPOINTS)  # the authors publish none
    status, lines = run(str(width32_checkpoint.parent), ['NAFNet-GoPro-width32.pth'], offline=True)
    assert status == 0 and 'no published checksum; loads strictly into NAFNetLocal' in lines[0]
    state = torch.load(width32_checkpoint, weights_only=True)['params']
    state.pop('ending.bias')
    broken = tmp_path / 'NAFNet-GoPro-width32.pth'
    torch.save({'params': state}, broken)
    status, lines = run(str(tmp_path), ['NAFNet-GoPro-width32.pth'], offline=True)
    assert status == 1 and 'does not load strictly into NAFNetLocal' in lines[0] and 'ending.bias' in lines[0]
    assert run(str(tmp_path), ['nope.pth'], offline=True)[0] == 1
