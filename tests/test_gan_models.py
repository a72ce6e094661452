"""DDR in BasicSR's GAN and Real-ESRGAN models: tiny copies of BasicSR's own ESRGAN, RealESRNet and RealESRGAN
option files with the documented change (``model_type: DDR<model>`` and ``ddr_opt``) train, log, save and resume."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ddr_basicsr import train as ddr_train
from ddr_basicsr.data.synthetic import write_synthetic_pairs
from ddr_basicsr.host.options import load_yaml
from ddr_basicsr.models.extra_loss_model import PixelWithExtraTerms
from ddr_basicsr.tools.option_file_generator import DDR_BLOCK, GAN_DDR_WEIGHT, GAN_RECIPES
from tiny_training import REPO_ROOT, read_logs, resumed_at, subprocess_env, write_options

GAN_OPTIONS = REPO_ROOT / 'options' / 'basicsr'
TINY_RRDB = {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 8}


def write_gt_folder(root: Path, count: int = 4, size: int = 96) -> Path:
    """GT-only images and a meta_info file, as RealESRGANDataset reads them."""
    folder = root / 'gt'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for index in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (5, 5), 2)
        cv2.imwrite(str(folder / f'{index:03d}.png'), image)
        names.append(f'gt/{index:03d}.png')
    (root / 'meta_info.txt').write_text('\n'.join(names) + '\n')
    return root


def tiny_copy(file_name: str, data: Path, clip_path: str) -> dict:
    """BasicSR's file with the documented change, then CPU, tiny networks and data, no VGG, two iterations."""
    opt = json.loads(json.dumps(load_yaml(str(GAN_OPTIONS / file_name))))
    opt['model_type'] = f"DDR{opt['model_type']}"
    opt['train']['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 0.1, 'pretrained': clip_path}
    opt.update(num_gpu=0, name=Path(file_name).stem)
    opt['network_g'].update(TINY_RRDB)
    if 'network_d' in opt:
        opt['network_d']['num_feat'] = 8
    opt['path'].update(pretrain_network_g=None)
    opt['train'].pop('perceptual_opt', None)  # VGG weights cannot be downloaded here
    opt['train']['total_iter'] = 2
    train_set = opt['datasets']['train']
    if train_set['type'] == 'RealESRGANDataset':
        train_set.update(dataroot_gt=str(data), meta_info=str(data / 'meta_info.txt'), gt_size=64)
        opt.update(gt_size=64, queue_size=4)
        opt['datasets'] = {'train': train_set}
        opt.pop('val', None)
    else:
        for phase, dataset in opt['datasets'].items():
            split = 'train' if phase == 'train' else 'val'
            dataset.update(dataroot_gt=str(data / split / 'gt'), dataroot_lq=str(data / split / 'lq'))
        opt['val'].update(val_freq=2, save_img=False)
        opt['val']['metrics']['ddr'] = {'type': 'calculate_ddr', 'pretrained': clip_path, 'device': 'cpu'}
    train_set.update(num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False, wandb=None)
    return opt


@pytest.fixture(scope='module')
def esrgan_data(tmp_path_factory) -> Path:
    """Paired x4 data with 128-px GT: ESRGAN's VGG-style discriminator takes 128x128 crops."""
    return write_synthetic_pairs(tmp_path_factory.mktemp('esrgan'), {'train': 4, 'val': 1}, size=128, scale=4)


@pytest.fixture(scope='module')
def gt_only_data(tmp_path_factory) -> Path:
    return write_gt_folder(tmp_path_factory.mktemp('realesrgan'))


GAN_TERMS = ('l_g_pix:', 'l_g_gan:', 'l_d_real:', 'l_d_fake:', 'l_ddr:')


@pytest.mark.slow
@pytest.mark.parametrize('file_name, terms', [
    ('train_ESRGAN_x4.yml', GAN_TERMS),
    ('train_realesrnet_x4plus.yml', ('l_pix:', 'l_ddr:')),
    ('train_realesrgan_x4plus.yml', GAN_TERMS),
])
def test_basicsr_gan_configs_train_with_ddr_through_ddr_train_and_resume(file_name, terms, esrgan_data, gt_only_data,
                                                                         tiny_clip_path, tmp_path):
    data = gt_only_data if 'realesr' in file_name else esrgan_data
    opt = tiny_copy(file_name, data, tiny_clip_path)
    yml = write_options(tmp_path / file_name, opt)
    ddr_train.main(['-opt', yml, '--root', str(tmp_path)])
    experiment = tmp_path / 'experiments' / opt['name']
    log = read_logs(experiment)
    assert all(term in log for term in terms), log[-2000:]
    assert (experiment / 'models' / 'net_g_2.pth').is_file() and (experiment / 'training_states' / '2.state').is_file()
    state = torch.load(experiment / 'training_states' / '2.state', weights_only=True)
    assert 'rng_states' in state and len(state['optimizers']) == (2 if 'l_g_gan:' in terms else 1)
    ddr_train.main(['-opt', yml, '--root', str(tmp_path), '--auto_resume', '--force_yml', 'train:total_iter=3'])
    assert resumed_at(read_logs(experiment))[1] == 2
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    saved = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)
    assert not any('clip' in key or 'ddr' in key for key in saved['params'])


@pytest.mark.slow
@pytest.mark.parametrize('file_name, terms', [
    ('train_ESRGAN_x4.yml', (*GAN_TERMS, '# ddr:')),
    ('train_realesrnet_x4plus.yml', ('l_pix:', 'l_ddr:')),
    ('train_realesrgan_x4plus.yml', GAN_TERMS),
])
def test_basicsr_gan_configs_train_with_ddr_through_stock_python_m_basicsr_train(file_name, terms, esrgan_data,
                                                                                 gt_only_data, tiny_clip_path,
                                                                                 tmp_path):
    opt = tiny_copy(file_name, gt_only_data if 'realesr' in file_name else esrgan_data, tiny_clip_path)
    yml = write_options(tmp_path / file_name, opt)
    run = subprocess.run([sys.executable, '-m', 'basicsr.train', '-opt', yml], cwd=tmp_path, env=subprocess_env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = read_logs(tmp_path / 'experiments' / opt['name'])
    assert all(term in log for term in terms), log[-2000:]
    assert (tmp_path / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth').is_file()


@pytest.mark.parametrize('stem', list(GAN_RECIPES))
def test_the_gan_recipes_are_basicsr_files_with_only_the_ddr_changes(stem):
    source, _, changes = GAN_RECIPES[stem]
    original = load_yaml(str(GAN_OPTIONS / source))
    derived = load_yaml(str(REPO_ROOT / 'options' / 'gan' / f'{stem}.yml'))
    assert derived['train'].pop('ddr_opt') == {**DDR_BLOCK, 'loss_weight': GAN_DDR_WEIGHT}
    assert derived.pop('model_type') == f"DDR{original.pop('model_type')}"
    assert derived.pop('name') == f"{original.pop('name')}_DDR"
    for key, value in changes.items():
        assert derived['path'].pop(key) == value and original['path'].pop(key)
    assert json.dumps(derived) == json.dumps(original)


def test_the_ddr_gradient_reaches_the_generator_only(esrgan_data, tiny_clip_path, tmp_path, monkeypatch):
    from basicsr.models import build_model

    from ddr_basicsr.host import seam
    from ddr_basicsr.host.run_options import parse_plugin_options
    opt = tiny_copy('train_ESRGAN_x4.yml', esrgan_data, tiny_clip_path)
    opt['train']['pixel_opt']['loss_weight'] = 0.0
    monkeypatch.setattr(seam.RUN, 'forced', True)
    parsed, _ = parse_plugin_options(str(tmp_path), True, ['-opt', write_options(tmp_path / 'g.yml', opt),
                                                           '--skip-data-check'])
    model = build_model(parsed)
    assert isinstance(model.cri_pix, PixelWithExtraTerms)
    output = model.net_g(torch.rand(1, 3, 16, 16))
    model.cri_pix(output, torch.rand(1, 3, 64, 64)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net_g.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.net_d.parameters())
    assert all(p.grad is None for p in model.cri_pix.extras.parameters())
    assert list(model.cri_pix.take_terms()) == ['l_ddr'] and model.cri_pix.take_terms() == {}


def test_ddr_sees_the_output_only_never_the_sharpened_gt(tiny_clip_path):
    from ddr_basicsr.losses.ddr_loss import DDRLoss
    criterion = PixelWithExtraTerms(torch.nn.L1Loss(), {'ddr': DDRLoss(pretrained=tiny_clip_path)})
    output = torch.rand(2, 3, 32, 32)
    sharpened, plain = torch.rand(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    total = criterion(output, sharpened)
    terms = criterion.take_terms()
    assert torch.allclose(total, torch.nn.functional.l1_loss(output, sharpened) + terms['l_ddr'])
    criterion(output, plain)
    assert torch.equal(criterion.take_terms()['l_ddr'], terms['l_ddr'])
    video = torch.rand(1, 2, 3, 32, 32)
    criterion(video, torch.rand(1, 2, 3, 32, 32))
    frames = torch.stack([DDRLoss(pretrained=tiny_clip_path, reduction='none')(video[0, i:i + 1]) for i in range(2)])
    assert torch.allclose(criterion.take_terms()['l_ddr'], frames.mean(), atol=1e-6)


@pytest.mark.parametrize('change, message', [
    (lambda opt: opt.update(model_type='ESRGANModel'),
     r'model_type ESRGANModel ignores the loss block\(s\) train.ddr_opt .*set model_type: DDRESRGANModel'),
    (lambda opt: opt['train'].update(perceptual_opt=opt['train'].pop('ddr_opt')),
     r"train.perceptual_opt: DDRESRGANModel calls this slot as l_percep, l_style = loss\(output, gt\).*'ddr_opt: "
     r"\{type: DDRLoss, loss_weight: ...\}', under model_type: DDRESRGANModel"),
    (lambda opt: opt.update(model_type='RestorationModel'),
     r'train.gan_opt needs a discriminator .*use model_type: DDRESRGANModel or DDRSRGANModel'),
])
def test_error_messages_name_the_model_to_use(change, message, esrgan_data, tiny_clip_path, tmp_path):
    opt = tiny_copy('train_ESRGAN_x4.yml', esrgan_data, tiny_clip_path)
    change(opt)
    with pytest.raises(ValueError, match=message):
        ddr_train.main(['-opt', write_options(tmp_path / 'bad.yml', opt), '--root', str(tmp_path)])
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('file_name', ['train_realesrnet_x4plus.yml', 'train_realesrgan_x4plus.yml'])
def test_real_esrgan_variants_build_on_the_cpu_with_ddr_on_the_pixel_criterion(file_name, gt_only_data,
                                                                              tiny_clip_path, tmp_path, monkeypatch):
    from basicsr.models import build_model

    from ddr_basicsr.host import seam
    from ddr_basicsr.host.run_options import parse_plugin_options
    opt = tiny_copy(file_name, gt_only_data, tiny_clip_path)
    monkeypatch.setattr(seam.RUN, 'forced', True)
    parsed, _ = parse_plugin_options(str(tmp_path), True, ['-opt', write_options(tmp_path / file_name, opt)])
    model = build_model(parsed)
    assert type(model).__name__ == opt['model_type'] and model.device.type == 'cpu'
    assert isinstance(model.cri_pix, PixelWithExtraTerms) and list(model.cri_pix.extras) == ['ddr']
    assert model.usm_sharpener.kernel.device.type == 'cpu'
    import basicsr.models.realesrgan_model as realesrgan_module
    import basicsr.utils.img_process_util as img_process_util
    cuda_before = torch.Tensor.cuda
    model.feed_data({'gt': torch.rand(2, 3, 64, 64), 'kernel1': torch.ones(2, 21, 21) / 441,
                     'kernel2': torch.ones(2, 21, 21) / 441, 'sinc_kernel': torch.ones(2, 21, 21) / 441})
    assert model.lq.shape == (2, 3, 16, 16)
    assert realesrgan_module.filter2D is img_process_util.filter2D and torch.Tensor.cuda is cuda_before  # put back


def test_every_family_has_a_registered_ddr_variant():
    from basicsr.utils.registry import MODEL_REGISTRY

    from ddr_basicsr.models.extra_loss_model import FAMILIES
    for family in FAMILIES:
        variant = MODEL_REGISTRY.get(f'DDR{family}')
        assert MODEL_REGISTRY.get(family) in variant.__mro__
        assert variant.__mro__.index(MODEL_REGISTRY.get(family)) > 2  # the plugin's mixins come first


@pytest.mark.slow
def test_swinir_variant_trains_with_ddr(tiny_clip_path, tmp_path):
    original = load_yaml(str(REPO_ROOT / 'tests' / 'data' / 'basicsr_options' / 'train_SwinIR_SRx2_scratch.yml'))
    opt = json.loads(json.dumps(original))
    data = write_synthetic_pairs(tmp_path / 'data', {'train': 2, 'val': 1}, size=48, scale=2)
    opt.update(model_type='DDRSwinIRModel', num_gpu=0, name='tiny_swinir_ddr')
    opt['network_g'].update(img_size=16, window_size=4, depths=[1], embed_dim=12, num_heads=[2])
    for phase, dataset in opt['datasets'].items():
        split = 'train' if phase == 'train' else 'val'
        dataset.update(dataroot_gt=str(data / split / 'gt'), dataroot_lq=str(data / split / 'lq'))
        dataset.pop('meta_info_file', None)
    opt['datasets']['train'].update(gt_size=32, num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    opt['train'].update(total_iter=2, ddr_opt={'type': 'DDRLoss', 'loss_weight': 0.1, 'pretrained': tiny_clip_path})
    opt['val'].update(val_freq=2)
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    ddr_train.main(['-opt', write_options(tmp_path / 'swinir.yml', opt), '--root', str(tmp_path)])
    log = read_logs(tmp_path / 'experiments' / 'tiny_swinir_ddr')
    assert 'l_pix:' in log and 'l_ddr:' in log and '# psnr:' in log


def test_video_recurrent_variant_scores_every_output_frame(tiny_clip_path):
    from basicsr.models import build_model
    opt = {'name': 'video', 'model_type': 'DDRVideoRecurrentModel', 'scale': 4, 'num_gpu': 0, 'is_train': True,
           'dist': False, 'rank': 0, 'world_size': 1, 'path': {},
           'network_g': {'type': 'BasicVSR', 'num_feat': 8, 'num_block': 1},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': 2,
                     'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [2], 'restart_weights': [1]},
                     'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0},
                     'ddr_opt': {'type': 'DDRLoss', 'loss_weight': 0.1, 'pretrained': tiny_clip_path}}}
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 2, 3, 64, 64), 'gt': torch.rand(1, 2, 3, 256, 256)})  # SpyNet: >= 64 px
    model.optimize_parameters(1)
    assert {'l_pix', 'l_ddr'} <= set(model.log_dict)
    assert all(torch.isfinite(p).all() for p in model.net_g.parameters())
