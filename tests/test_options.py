"""Option files of the paper's experiment matrix (options/): generated, safely loadable, faithful to the
paper and the official configs, and buildable on the CPU with tiny substitutes (tiny CLIP, random VGG)."""
import copy
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List

import open_clip
import pytest
import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models import build_model
from basicsr.utils.registry import DATASET_REGISTRY, METRIC_REGISTRY

from ddr_basicsr.host.options import check_model_options, load_yaml
from ddr_basicsr.tools import option_file_generator as option_files

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ROOT / 'options'
ARCH_KEYS = Path(__file__).parent / 'data' / 'archs'
TRAIN_FILES = sorted(OPTIONS.glob('*.yml')) + sorted((OPTIONS / 'ablation').glob('*.yml'))
TEST_FILES = sorted((OPTIONS / 'test').rglob('*.yml'))
TRAINED_TEST_FILES = [path for path in TEST_FILES if not path.name.startswith('official_')]

ARCHS = {'nafnet': 200000, 'restormer': 300000}  # paper A.2.2: iterations
DATASETS = ('gopro', 'realblur', 'realsr_city100')
FEATURE_LOSSES = {'lpips': ('lpips_opt', 'LPIPSLoss', 1.0), 'ctx': ('ctx_opt', 'ContextualLoss', 1.0),
                  'pdl': ('pdl_opt', 'PDLLoss', 1.0), 'fdl': ('fdl_opt', 'FDLLoss', 0.1)}  # Sec. 4.1: lambda_f
PAPER_DDR = {'type': 'DDRLoss', 'loss_weight': 2.0, 'degradations': ['color', 'content', 'blur'], 'model': 'ViT-B-32',
             'pretrained': 'openai', 'adaptation': True, 'distance': 'cosine'}  # Sec. 4.1: lambda_d, D, CLIP, distance
TABLE6_CHANGES = {  # Table 6 rows 1-9: the single change to the full DDR setting
    'd_blur_content': {'degradations': ['blur', 'content']}, 'd_color_content': {'degradations': ['color', 'content']},
    'd_color_blur': {'degradations': ['color', 'blur']},
    'lambda1': {'loss_weight': 1.0}, 'lambda3': {'loss_weight': 3.0},
    'vitb16': {'model': 'ViT-B-16'}, 'rn50x16': {'model': 'RN50x16'}, 'rn50x64': {'model': 'RN50x64'},
    'no_adaptation': {'adaptation': False}}
OFFICIAL_CHECKPOINTS = {'official_nafnet_width64_gopro': 'NAFNet-GoPro-width64', 'official_nafnet_width32_gopro':
                        'NAFNet-GoPro-width32', 'official_restormer_gopro': 'Restormer-MotionDeblur',
                        'official_restormer_realblur_j': 'Restormer-MotionDeblur',
                        'official_restormer_realblur_r': 'Restormer-MotionDeblur'}
TINY_NETWORKS = {
    'NAFNetLocal': {'width': 8, 'enc_blk_nums': [1, 1, 1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1, 1, 1]},
    'Restormer': {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]}}
VGG_LOSSES = ('LPIPSLoss', 'ContextualLoss', 'PDLLoss', 'FDLLoss')
NUMBER_AS_TEXT = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?')


def rel(path: Path) -> str:
    return str(path.relative_to(OPTIONS))


def load(path: Path) -> Dict[str, Any]:
    return json.loads(json.dumps(load_yaml(str(path))))  # plain dicts, safe to deep-copy and compare


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def stem_parts(path: Path) -> List[str]:
    """(arch, dataset, loss) of a training file; ablations are NAFNet/GoPro/DDR."""
    if path.parent.name == 'ablation':
        return ['nafnet', 'gopro', 'ddr']
    arch, rest = path.stem.split('_', 1)
    dataset, loss = rest.rsplit('_', 1)
    return [arch, dataset, loss]


def loss_blocks(opt: Dict[str, Any]) -> Dict[str, Any]:
    return {key: value for key, value in opt['train'].items() if key.endswith('_opt')}


def official_network(key_list: str) -> Dict[str, Any]:
    """network_g of an official config, from the header of its reference key list."""
    header = dict(line[2:].split(': ', 1) for line in (ARCH_KEYS / f'{key_list}.keys.tsv').read_text().splitlines()
                  if line.startswith('# ') and ': ' in line)
    return {'type': header['class'], **json.loads(header['constructor_kwargs'])}


def with_defaults(network: Dict[str, Any]) -> Dict[str, Any]:
    return {'img_channel': 3, **network} if network['type'].startswith('NAFNet') else network


def offline_loss_block(block: Dict[str, Any], tiny_clip_path: str) -> Dict[str, Any]:
    """The same loss without downloads: tiny random CLIP for DDR, random VGG trunks for the feature losses."""
    block = dict(block)
    if block['type'] == 'DDRLoss':
        block.update(model='ViT-B-32', pretrained=tiny_clip_path)  # architecture comes from the tiny file
    elif block['type'] in VGG_LOSSES:
        block['pretrained'] = False
    return block


def cpu_options(opt: Dict[str, Any], is_train: bool) -> Dict[str, Any]:
    """What BasicSR's parse_options adds, on the CPU, with a tiny network of the same type."""
    opt = copy.deepcopy(opt)
    opt.update(num_gpu=0, is_train=is_train, dist=False, rank=0, world_size=1)
    opt['network_g'].update(TINY_NETWORKS[opt['network_g']['type']])
    return opt


# --------------------------------------------------------------------------- generated, complete, safe
def test_generator_check_passes_and_output_is_deterministic(tmp_path: Path) -> None:
    assert option_files.sync_option_files(OPTIONS, check=True) == (0, [])
    first, second = tmp_path / 'first', tmp_path / 'second'
    for folder in (first, second):
        assert option_files.sync_option_files(folder).status == 0
    files = option_files.existing_files(first)
    assert files == option_files.existing_files(second) == option_files.existing_files(OPTIONS)
    assert len(files) == len(option_files.generated_files())
    for path in files:  # byte for byte: twice in this process, and as committed by an earlier one
        assert (first / path).read_bytes() == (second / path).read_bytes() == (OPTIONS / path).read_bytes(), path


def test_generator_rewrites_stale_files_and_reports_them(tmp_path: Path) -> None:
    assert option_files.sync_option_files(tmp_path).status == 0
    assert option_files.sync_option_files(tmp_path, check=True).status == 0
    edited = tmp_path / 'nafnet_gopro_ddr.yml'
    edited.write_text(edited.read_text().replace('loss_weight: 2.0', 'loss_weight: 5.0'))
    (tmp_path / 'ablation' / 'extra.yml').write_text('name: x\n')
    check = option_files.sync_option_files(tmp_path, check=True)
    assert check.status == 1
    assert check.lines == [f'missing or stale: {edited}', f"not generated: {tmp_path / 'ablation' / 'extra.yml'}"]
    assert option_files.sync_option_files(tmp_path).status == 0
    assert 'loss_weight: 2.0' in edited.read_text()


def test_experiment_matrix_is_complete() -> None:
    losses = ('psnr', 'lpips', 'ctx', 'pdl', 'fdl', 'ddr')
    expected = {f'{arch}_{dataset}_{loss}.yml' for arch in ARCHS for dataset in DATASETS for loss in losses}
    assert {path.name for path in OPTIONS.glob('*.yml')} == expected and len(expected) == 36
    assert {path.stem for path in (OPTIONS / 'ablation').glob('*.yml')} == {
        f'nafnet_gopro_ddr_{suffix}' for suffix in TABLE6_CHANGES}
    assert {rel(path) for path in TRAINED_TEST_FILES} == {f'test/{rel(path)}' for path in TRAIN_FILES}
    assert {path.stem for path in TEST_FILES if path.name.startswith('official_')} == set(OFFICIAL_CHECKPOINTS)
    readme = (OPTIONS / 'README.md').read_text()
    assert all(f'`{rel(path)}`' in readme for path in TRAIN_FILES + TEST_FILES if 'official' not in path.name)


@pytest.mark.parametrize('path', TRAIN_FILES + TEST_FILES, ids=rel)
def test_file_loads_safely_with_numbers_as_numbers(path: Path) -> None:
    text = path.read_text()
    assert text.startswith('# ') and 'Generated by scripts/make_option_files.py' in text
    opt = load(path)
    assert opt['model_type'] == 'RestorationModel' and opt['scale'] == 1 and opt['num_gpu'] == 1
    as_text = [value for value in strings(opt) if NUMBER_AS_TEXT.fullmatch(value)]
    assert not as_text, f'numbers read as strings (write !!float): {as_text}'
    check_model_options(opt, is_train=path in TRAIN_FILES)
    for dataset in opt['datasets'].values():
        assert dataset['type'] in DATASET_REGISTRY
    for metric in opt['val']['metrics'].values():
        assert metric['type'] in METRIC_REGISTRY


# --------------------------------------------------------------------------- paper and official settings
@pytest.mark.parametrize('path', TRAIN_FILES, ids=rel)
def test_training_file_has_paper_settings(path: Path) -> None:
    arch, dataset, loss = stem_parts(path)
    opt, train = load(path), load(path)['train']
    header = path.read_text().split('\n\n', 1)[0]
    assert 'From the paper' in header and 'From the official' in header
    assert opt['datasets']['train']['batch_size_per_gpu'] == 4
    assert train['optim_g']['type'] == 'AdamW' and train['total_iter'] == ARCHS[arch]
    assert train['pixel_opt'] == {'type': 'PSNRLoss', 'loss_weight': 1.0, 'reduction': 'mean'}
    assert train['use_grad_clip'] is True and train['grad_clip_norm'] == 0.01
    extra = {key: block for key, block in loss_blocks(opt).items() if key != 'pixel_opt'}
    if loss == 'psnr':
        assert extra == {}
    elif loss == 'ddr':
        assert list(extra) == ['ddr_opt']
        if path.parent.name != 'ablation':
            assert extra['ddr_opt'] == PAPER_DDR
    else:
        key, loss_type, weight = FEATURE_LOSSES[loss]
        assert extra == {key: {'type': loss_type, 'loss_weight': weight}}
    official = official_network('NAFNet-GoPro-width64' if arch == 'nafnet' else 'Restormer-MotionDeblur')
    assert with_defaults(opt['network_g']) == official


def test_nafnet_schedule_is_the_official_cosine_over_200k() -> None:
    train = load(OPTIONS / 'nafnet_gopro_psnr.yml')['train']
    assert train['optim_g'] == {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]}
    assert train['scheduler'] == {'type': 'TrueCosineAnnealingLR', 'T_max': 200000, 'eta_min': 1e-7}
    assert 'progressive' not in train


def test_restormer_schedule_is_official_with_progressive_batches_capped_at_4() -> None:
    opt = load(OPTIONS / 'restormer_realblur_ddr.yml')
    train = opt['train']
    assert train['optim_g'] == {'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]}
    assert train['scheduler'] == {'type': 'CosineAnnealingRestartCyclicLR', 'periods': [92000, 208000],
                                  'restart_weights': [1, 1], 'eta_mins': [3e-4, 1e-6]}
    progressive = train['progressive']
    assert progressive['iters'] == [92000, 64000, 48000, 36000, 36000, 24000]
    assert sum(progressive['iters']) == sum(train['scheduler']['periods']) == train['total_iter'] == 300000
    assert progressive['gt_sizes'] == [128, 160, 192, 256, 320, 384] == sorted(progressive['gt_sizes'])
    official_per_gpu = [8, 5, 4, 2, 1, 1]
    assert progressive['mini_batch_sizes'] == [min(size, 4) for size in official_per_gpu]
    assert opt['datasets']['train']['gt_size'] == max(progressive['gt_sizes'])
    assert opt['val']['window_size'] == 8


@pytest.mark.parametrize('suffix', sorted(TABLE6_CHANGES))
def test_ablation_differs_from_the_full_setting_in_one_ddr_value(suffix: str) -> None:
    full = load(OPTIONS / 'nafnet_gopro_ddr.yml')
    ablation = load(OPTIONS / 'ablation' / f'nafnet_gopro_ddr_{suffix}.yml')
    assert ablation['name'] != full['name']
    assert ablation['train'].pop('ddr_opt') == {**PAPER_DDR, **TABLE6_CHANGES[suffix]}
    full['train'].pop('ddr_opt')
    assert {**ablation, 'name': None} == {**full, 'name': None}


def test_ablation_backbones_exist_in_open_clip() -> None:
    backbones = {change['model'] for change in TABLE6_CHANGES.values() if 'model' in change}
    assert backbones | {'ViT-B-32'} <= set(open_clip.list_models())


@pytest.mark.parametrize('path', TRAINED_TEST_FILES, ids=rel)
def test_test_file_evaluates_its_training_run(path: Path) -> None:
    test, train = load(path), load(OPTIONS / path.relative_to(OPTIONS / 'test'))
    assert test['name'] == train['name']
    assert test['path']['pretrain_network_g'] == f"experiments/{train['name']}/models/net_g_latest.pth"
    assert test['network_g'] == train['network_g']
    data = test['datasets']['test_1']
    assert (data['dataroot_gt'], data['dataroot_lq']) == (train['datasets']['val']['dataroot_gt'],
                                                          train['datasets']['val']['dataroot_lq'])
    assert test['val'].get('window_size') == train['val'].get('window_size')
    ecc = 'realblur' in path.stem
    assert {m['type'] for m in test['val']['metrics'].values()} == (
        {'calculate_psnr_ecc', 'calculate_ssim_ecc'} if ecc else {'calculate_psnr', 'calculate_ssim'})


@pytest.mark.parametrize('stem', sorted(OFFICIAL_CHECKPOINTS))
def test_official_checkpoint_file_matches_the_official_network(stem: str) -> None:
    opt = load(OPTIONS / 'test' / f'{stem}.yml')
    assert with_defaults(opt['network_g']) == official_network(OFFICIAL_CHECKPOINTS[stem])
    assert opt['path']['pretrain_network_g'].startswith('experiments/pretrained_models/')
    assert opt['path']['param_key_g'] == 'params' and opt['path']['strict_load_g'] is True
    assert ('window_size' in opt['val']) == stem.startswith('official_restormer')
    ecc = 'realblur' in stem
    assert opt['val']['metrics']['psnr']['type'] == ('calculate_psnr_ecc' if ecc else 'calculate_psnr')


# --------------------------------------------------------------------------- everything builds on the CPU
def test_every_full_size_network_builds_with_official_parameter_count() -> None:
    networks = {json.dumps(load(path)['network_g'], sort_keys=True) for path in TRAIN_FILES + TEST_FILES}
    counts = {'NAFNet-GoPro-width64': 67888835, 'NAFNet-GoPro-width32': 17111907, 'Restormer-MotionDeblur': 26126644}
    expected = {json.dumps(official_network(name), sort_keys=True): count for name, count in counts.items()}
    built = {}
    for network in networks:
        net = build_network(json.loads(network))
        built[json.dumps(with_defaults(json.loads(network)), sort_keys=True)] = sum(p.numel() for p in net.parameters())
    assert built == expected


@pytest.fixture(scope='module')
def offline_losses(tiny_clip_path: str) -> Dict[str, torch.nn.Module]:
    """Every distinct loss block of the training files -> its loss built offline (blocks with the same
    offline form, e.g. the CLIP backbone ablations, share one build)."""
    blocks = {json.dumps(block, sort_keys=True): offline_loss_block(block, tiny_clip_path)
              for path in TRAIN_FILES for block in loss_blocks(load(path)).values()}
    built: Dict[str, torch.nn.Module] = {}
    for block in blocks.values():
        built.setdefault(json.dumps(block, sort_keys=True), build_loss(block))
    return {key: built[json.dumps(block, sort_keys=True)] for key, block in blocks.items()}


def test_every_loss_block_builds_offline(offline_losses: Dict[str, torch.nn.Module]) -> None:
    built_types = set()
    for key, loss in offline_losses.items():
        block = json.loads(key)
        built_types.add(type(loss).__name__)
        assert type(loss).__name__ == block['type'] and loss.loss_weight == block['loss_weight']
        if block['type'] == 'DDRLoss':
            assert tuple(loss.ddr.degradation_names) == tuple(block['degradations'])
    assert built_types == {'PSNRLoss', 'DDRLoss', *VGG_LOSSES}


def test_every_training_file_builds_its_model(offline_losses: Dict[str, torch.nn.Module],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ddr_basicsr.models import restoration_model
    monkeypatch.setattr(restoration_model, 'build_loss',
                        lambda block: offline_losses[json.dumps(block, sort_keys=True)])
    distinct = {}
    for path in TRAIN_FILES:  # the model does not depend on dataset paths and names
        opt = load(path)
        opt['datasets'] = {phase: {k: v for k, v in s.items() if k not in ('name', 'dataroot_gt', 'dataroot_lq')}
                           for phase, s in opt['datasets'].items()}
        distinct.setdefault(json.dumps({**opt, 'name': None}, sort_keys=True), (path, load(path)))
    assert len(distinct) == 2 * 6 + len(TABLE6_CHANGES)
    for path, opt in distinct.values():
        model = build_model(cpu_options(opt, is_train=True))
        assert list(model.losses) == [key[:-len('_opt')] for key in loss_blocks(opt)], rel(path)
        optimizer = model.optimizers[0]
        assert type(optimizer).__name__ == 'AdamW'
        assert optimizer.param_groups[0]['lr'] == opt['train']['optim_g']['lr']
        assert type(model.schedulers[0]).__name__ == opt['train']['scheduler']['type']
        assert model.use_grad_clip and model.grad_clip_norm == 0.01
        assert (model.progressive is not None) == ('progressive' in opt['train'])


def test_every_test_file_builds_and_loads_its_checkpoint(tmp_path: Path) -> None:
    distinct = {}
    for path in TEST_FILES:  # with tiny networks the files differ only in names, data, metrics and checkpoint
        opt = cpu_options(load(path), is_train=False)
        settings = {key: value for key, value in opt['path'].items() if key != 'pretrain_network_g'}
        distinct.setdefault(json.dumps([opt['network_g'], settings, opt['val'].get('window_size')]), (path, opt))
    assert {opt['network_g']['type'] for _, opt in distinct.values()} == set(TINY_NETWORKS)
    for path, opt in distinct.values():
        net = build_network(copy.deepcopy(opt['network_g']))
        checkpoint = tmp_path / f'{path.stem}.pth'
        torch.save({'params': {key: torch.randn_like(value) for key, value in net.state_dict().items()}}, checkpoint)
        opt['path']['pretrain_network_g'] = str(checkpoint)
        model = build_model(opt)
        loaded, saved = model.net_g.state_dict(), torch.load(checkpoint, weights_only=True)['params']
        assert all(torch.equal(loaded[key], saved[key]) for key in saved), rel(path)
