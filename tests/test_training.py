"""RestorationModel, its schedulers and the ddr-train / ddr-test entry points on a tiny synthetic dataset (CPU)."""
import copy
import math
import socket
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY
from torch import nn

from ddr_basicsr import test as ddr_test
from ddr_basicsr import train as ddr_train
from ddr_basicsr.host.options import check_options
from ddr_basicsr.host.pipelines import split_root_argument
from ddr_basicsr.models.lr_scheduler import CosineAnnealingRestartCyclicLR, TrueCosineAnnealingLR
from ddr_basicsr.models.restoration_model import ProgressiveSchedule, RestorationModel
from tiny_training import (
    TINY_NAFNET,
    logged_iterations,
    make_options,
    read_logs,
    resumed_at,
    subprocess_env,
    write_options,
)


def net_keys() -> set:
    from basicsr.archs import build_network
    return set(build_network(dict(TINY_NAFNET)).state_dict())


# ---------------------------------------------------------------------------------------------------------------------
# end to end

def test_train_validate_checkpoint_then_auto_resume(dataset_root, tiny_clip_path, tmp_path):
    root = tmp_path / 'root'
    yml = write_options(tmp_path / 'tiny.yml', make_options(dataset_root, tiny_clip_path))
    ddr_train.main(['-opt', yml, '--root', str(root)])

    experiment = root / 'experiments' / 'tiny'
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['3.state', '6.state']
    assert {'net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth'} <= {p.name for p in (experiment / 'models').iterdir()}
    log = read_logs(experiment)
    assert 'l_pixel:' in log and 'l_ddr:' in log and 'l_total:' in log and '# psnr:' in log
    assert (experiment / 'visualization' / '000' / '000_3.png').is_file()
    checkpoint = torch.load(experiment / 'models' / 'net_g_6.pth', weights_only=True)
    assert set(checkpoint) == {'params', 'params_ema'}
    assert set(checkpoint['params']) == net_keys()  # the frozen CLIP of DDRLoss is not saved

    ddr_train.main(['-opt', yml, '--root', str(root), '--auto_resume', '--force_yml', 'train:total_iter=9'])
    assert resumed_at(read_logs(experiment)) == (1, 6)
    assert not list((root / 'experiments').glob('tiny_archived_*'))  # no fresh start
    state = torch.load(experiment / 'training_states' / '9.state', weights_only=True)
    assert state['iter'] == 9 and state['schedulers'][0]['last_epoch'] == 8
    assert int(state['optimizers'][0]['state'][0]['step']) == 9
    expected_lr = 1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi * 8 / 9))
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(expected_lr)

    test_opt = make_options(dataset_root, tiny_clip_path, name='tiny_test')
    test_opt['datasets'] = {'test': test_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(experiment / 'models' / 'net_g_latest.pth'),
                        'param_key_g': 'params_ema'}
    del test_opt['train']
    ddr_test.main(['-opt', write_options(tmp_path / 'test.yml', test_opt), '--root', str(root)])
    results = root / 'results' / 'tiny_test'
    assert '# psnr:' in read_logs(results)
    assert len(list((results / 'visualization' / 'synth_val').glob('*_tiny_test.png'))) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the gloo CPU path')
def test_two_process_gloo_ddp(dataset_root, tiny_clip_path, tmp_path):
    opt = make_options(dataset_root, tiny_clip_path, name='ddp')
    opt['train'].update(total_iter=2, ema_decay=0)
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    opt['logger']['save_checkpoint_freq'] = 2
    opt['val'].update(val_freq=100, save_img=False)
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
               '-m', 'ddr_basicsr.train', '-opt', write_options(tmp_path / 'ddp.yml', opt), '--launcher', 'pytorch',
               '--root', str(tmp_path)]
    run = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'ddp'
    log = read_logs(experiment)
    assert 'World size (gpu number): 2' in log and 'DistributedDataParallel - NAFNet' in log
    assert max(logged_iterations(log)) == 2 and '# psnr:' in log
    checkpoint = torch.load(experiment / 'models' / 'net_g_2.pth', weights_only=True)
    assert set(checkpoint['params']) == net_keys()
    assert (experiment / 'training_states' / '2.state').is_file()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the gloo CPU path')
def test_basicsrs_documented_torch_distributed_launch_form_trains_a_plugin_run(dataset_root, tiny_clip_path,
                                                                              tmp_path):
    """``python -m torch.distributed.launch ... basicsr/train.py --launcher pytorch`` passes ``--local-rank=0``."""
    import basicsr
    checkout = tmp_path / 'BasicSR' / 'basicsr'
    checkout.mkdir(parents=True)
    (checkout / 'train.py').write_text(Path(basicsr.__file__).with_name('train.py').read_text())
    opt = make_options(dataset_root, tiny_clip_path, name='launched')
    opt['train'].update(total_iter=1, ema_decay=0)
    opt['val'].update(val_freq=100, save_img=False)
    command = [sys.executable, '-m', 'torch.distributed.launch', '--nproc_per_node=1', f'--master_port={_free_port()}',
               str(checkout / 'train.py'), '-opt', write_options(tmp_path / 'launched.yml', opt), '--launcher',
               'pytorch']
    run = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / 'BasicSR' / 'experiments' / 'launched' / 'models' / 'net_g_latest.pth').is_file()


# ---------------------------------------------------------------------------------------------------------------------
# option errors (raised while parsing, before anything is written)

def _break_ignored_block(opt, _):
    opt['model_type'] = 'SRModel'


def _break_dataset_folder(opt, tmp_path):
    opt['datasets']['train']['dataroot_lq'] = str(tmp_path / 'no_such_folder')


def _break_unknown_loss(opt, _):
    opt['train']['ddr_opt']['type'] = 'DDRLos'


def _break_gan_block(opt, _):
    opt['train']['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'vanilla'}


def _break_block_name(opt, _):
    opt['train']['ddr_opts'] = opt['train'].pop('ddr_opt')


def _break_loss_key(opt, _):
    opt['train']['pixel_opt']['loss_wieght'] = opt['train']['pixel_opt'].pop('loss_weight')


def _break_network_key(opt, _):
    opt['network_g']['widht'] = 8


def _break_metric(opt, _):
    opt['val']['metrics']['psnr']['type'] = 'calculate_psnrr'


def _break_name(opt, _):
    opt['name'] = '../../victim'


def _break_num_gpu(opt, _):
    opt['num_gpu'] = 1


@pytest.mark.parametrize('breaker, error, message', [
    (_break_ignored_block, ValueError,
     r'model_type SRModel ignores the loss block\(s\) train.ddr_opt .*set model_type: RestorationModel'),
    (_break_dataset_folder, FileNotFoundError, r"datasets.train.dataroot_lq: '.*no_such_folder' does not exist"),
    (_break_unknown_loss, ValueError, r"unknown loss type 'DDRLos' in train.ddr_opt; registered losses: .*PSNRLoss"),
    (_break_gan_block, ValueError, r'train.gan_opt needs a discriminator'),
    (_break_name, ValueError, r"name '../../victim' must be a plain folder name"),
    (_break_block_name, ValueError, r"train.ddr_opts is not read by any model \(a loss block's key ends in '_opt', "
                                    r"e.g. 'ddr_opt'\); it would be ignored"),
    (_break_loss_key, ValueError, r"train.pixel_opt.loss_wieght: PSNRLoss has no option 'loss_wieght' \(did you mean "
                                  r"'loss_weight'\?\); its options: loss_weight, reduction, toY"),
    (_break_network_key, ValueError, r"network_g.widht: NAFNet has no option 'widht' \(did you mean 'width'\?\)"),
    (_break_metric, ValueError, r"val.metrics.psnr: unknown metric type 'calculate_psnrr' \(did you mean "
                                r"'calculate_psnr'\?\)"),
    pytest.param(_break_num_gpu, ValueError, r'num_gpu is 1 but CUDA is not available',
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')),
])
def test_option_errors(breaker, error, message, dataset_root, tiny_clip_path, tmp_path):
    opt = make_options(dataset_root, tiny_clip_path)
    breaker(opt, tmp_path)
    yml = write_options(tmp_path / 'broken.yml', opt)
    with pytest.raises(error, match=message):
        ddr_train.main(['-opt', yml, '--root', str(tmp_path)])
    assert not (tmp_path / 'experiments').exists()


def test_python_yaml_tag_in_option_file_is_rejected(dataset_root, tiny_clip_path, tmp_path):
    marker = tmp_path / 'executed'
    yml = tmp_path / 'evil.yml'
    yml.write_text(f'hook: !!python/object/apply:os.system ["touch {marker}"]\n' +
                   yaml.safe_dump(make_options(dataset_root, tiny_clip_path)))
    with pytest.raises(yaml.YAMLError, match='is not allowed in option files'):
        ddr_train.main(['-opt', str(yml), '--root', str(tmp_path)])
    assert not marker.exists()


def test_stock_model_with_only_its_own_blocks_passes_the_check(dataset_root, tiny_clip_path):
    opt = make_options(dataset_root, tiny_clip_path)
    opt['model_type'] = 'SRModel'
    del opt['train']['ddr_opt']
    with pytest.raises(ValueError, match=r"unknown optimizer 'AdamW' in train.optim_g \(did you mean 'Adam'\?\); "
                                         "BasicSR's models build only Adam"):
        check_options(copy.deepcopy(opt), is_train=True)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 1e-3}
    with pytest.raises(ValueError, match=r"unknown scheduler 'TrueCosineAnnealingLR' in train.scheduler.*use one of "
                                         'MultiStepLR, MultiStepRestartLR, CosineAnnealingRestartLR$'):
        check_options(copy.deepcopy(opt), is_train=True)
    opt['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}
    check_options(opt, is_train=True)


class PluginEdgeModel(SRModel):
    """A third-party SRModel subclass; it may read loss blocks of its own (edge_opt)."""


if 'PluginEdgeModel' not in MODEL_REGISTRY:
    MODEL_REGISTRY.register(PluginEdgeModel)


def test_third_party_models_are_not_second_guessed(dataset_root, tiny_clip_path):
    opt = make_options(dataset_root, tiny_clip_path)
    opt['model_type'] = 'PluginEdgeModel'
    opt['train']['edge_opt'] = {'type': 'L1Loss'}
    check_options(opt, is_train=True)


def test_help_shows_root_in_the_usage(capsys):
    with pytest.raises(SystemExit):
        ddr_train.main(['--help'])
    out = capsys.readouterr().out
    assert out.startswith('usage: ddr-train [--root DIR] [--skip-data-check] -opt OPT') and '--auto_resume' in out


def test_split_root_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert split_root_argument(['-opt', 'x.yml', '--local-rank=1']) == (
        str(tmp_path), ['-opt', 'x.yml', '--local-rank=1'])
    assert split_root_argument(['--root', 'runs', '-opt', 'x.yml']) == (str(tmp_path / 'runs'),
                                                                                 ['-opt', 'x.yml'])


# ---------------------------------------------------------------------------------------------------------------------
# RestorationModel pieces

def model_options(**train) -> dict:
    return {'name': 'unit', 'model_type': 'RestorationModel', 'scale': 1, 'is_train': True, 'dist': False,
            'num_gpu': 0, 'network_g': dict(TINY_NAFNET), 'path': {},
            'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'pixel_opt': {'type': 'L1Loss'}, **train}}


class OutputOnlyLoss(nn.Module):
    """A no-reference test loss: mean of the output; records how it was called."""
    requires_reference = False

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight
        self.calls = []

    def forward(self, pred, *args):
        self.calls.append(len(args))
        return self.loss_weight * pred.mean()


class PairLoss(nn.Module):
    """Returns a (main, style) pair like BasicSR's PerceptualLoss."""

    def forward(self, pred, target):
        return (pred - target).abs().mean(), None


for _loss in (OutputOnlyLoss, PairLoss):
    if _loss.__name__ not in LOSS_REGISTRY:
        LOSS_REGISTRY.register(_loss)


def test_losses_are_summed_logged_and_no_reference_losses_get_the_output_only():
    torch.manual_seed(0)
    model = RestorationModel(model_options(nr_opt={'type': 'OutputOnlyLoss', 'loss_weight': 0.5},
                                           perceptual_opt={'type': 'PairLoss'}))
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': lq, 'gt': gt})
    model.optimize_parameters(1)
    assert list(model.log_dict) == ['l_pixel', 'l_nr', 'l_perceptual', 'l_total']
    assert model.losses['nr'].calls == [0]
    output = model.output.detach()
    assert model.log_dict['l_nr'] == pytest.approx(0.5 * output.mean().item(), rel=1e-5)
    assert model.log_dict['l_pixel'] == pytest.approx((output - gt).abs().mean().item(), rel=1e-5)
    assert model.log_dict['l_total'] == pytest.approx(
        model.log_dict['l_pixel'] + model.log_dict['l_nr'] + model.log_dict['l_perceptual'], rel=1e-5)


def test_no_loss_block_is_an_error():
    opt = model_options()
    del opt['train']['pixel_opt']
    with pytest.raises(ValueError, match=r'no loss configured'):
        RestorationModel(opt)


@pytest.mark.parametrize('optim, error, message', [
    ({'type': 'Adamm', 'lr': 1e-3}, ValueError, "unknown optimizer 'Adamm'"),
    ({'type': 'AdamW', 'lr': '1e-3'}, TypeError, r"train.optim_g.lr is the string '1e-3'.*!!float"),
])
def test_optimizer_errors(optim, error, message):
    with pytest.raises(error, match=message):
        RestorationModel(model_options(optim_g=optim))


def test_any_torch_optimizer_and_scheduler_by_name():
    model = RestorationModel(model_options(optim_g={'type': 'SGD', 'lr': 0.1, 'momentum': 0.9},
                                           scheduler={'type': 'StepLR', 'step_size': 2, 'gamma': 0.5}))
    assert isinstance(model.optimizer_g, torch.optim.SGD) and model.optimizer_g.defaults['momentum'] == 0.9
    for _ in range(4):
        model.optimizer_g.step()
        model.schedulers[0].step()
    assert model.get_current_learning_rate() == [pytest.approx(0.025)]
    with pytest.raises(ValueError, match="unknown scheduler 'Cosine'"):
        RestorationModel(model_options(scheduler={'type': 'Cosine'}))
    basicsr_scheduler = RestorationModel(model_options(scheduler={'type': 'MultiStepLR', 'milestones': [2]}))
    assert type(basicsr_scheduler.schedulers[0]).__name__ == 'MultiStepRestartLR'


def _lrs(scheduler, steps):
    values = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        values.append(scheduler.get_last_lr()[0])
    return values


def test_true_cosine_annealing_closed_form():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = _lrs(TrueCosineAnnealingLR(optimizer, T_max=4, eta_min=0.1), 6)
    expected = [0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 4) / 4)) for t in range(7)]
    assert lrs == pytest.approx(expected)


def test_cyclic_restart_schedule_is_constant_then_cosine():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=3e-4)
    lrs = _lrs(CosineAnnealingRestartCyclicLR(optimizer, periods=[3, 4], restart_weights=[1, 1],
                                              eta_mins=[3e-4, 1e-6]), 9)
    tail = [1e-6 + 0.5 * (3e-4 - 1e-6) * (1 + math.cos(math.pi * k / 4)) for k in range(1, 5)]
    assert lrs == pytest.approx([3e-4] * 4 + tail + [1e-6, 1e-6])
    with pytest.raises(ValueError, match='same non-zero length'):
        CosineAnnealingRestartCyclicLR(optimizer, periods=[3, 4], restart_weights=[1], eta_mins=[0, 0])


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(0)
    batch = {'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 16, 16)}
    steps = {}
    for clip in (False, True):
        torch.manual_seed(1)
        model = RestorationModel(model_options(optim_g={'type': 'SGD', 'lr': 1.0}, use_grad_clip=clip,
                                               grad_clip_norm=0.01))
        before = torch.cat([p.detach().flatten().clone() for p in model.net_g.parameters()])
        model.feed_data(batch)
        model.optimize_parameters(1)
        after = torch.cat([p.detach().flatten() for p in model.net_g.parameters()])
        steps[clip] = (after - before).norm().item()
    assert steps[True] == pytest.approx(0.01, rel=1e-3) and steps[False] > 0.05


def test_bf16_autocast_runs_the_network_in_bf16_and_the_losses_in_fp32():
    model = RestorationModel(model_options(mixed_precision='bf16'))
    seen = []
    model.net_g.ending.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    model.feed_data({'lq': torch.rand(1, 3, 16, 16), 'gt': torch.rand(1, 3, 16, 16)})
    model.optimize_parameters(1)
    assert seen == [torch.bfloat16] and model.output.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters())
    with pytest.raises(ValueError, match='train.mixed_precision must be'):
        RestorationModel(model_options(mixed_precision='fp16'))


def test_progressive_schedule_stages_and_crops():
    schedule = ProgressiveSchedule(iters=[2, 3], gt_sizes=[8, 16], mini_batch_sizes=[3, 1], scale=2)
    assert [schedule.stage(i) for i in (1, 2, 3, 5, 9)] == [0, 0, 1, 1, 1]
    gt = torch.arange(4 * 3 * 24 * 24, dtype=torch.float32).reshape(4, 3, 24, 24)
    lq = gt[..., ::2, ::2].contiguous()
    torch.manual_seed(0)
    lq_crop, gt_crop = schedule(lq, gt, 1)
    assert lq_crop.shape == (3, 3, 4, 4) and gt_crop.shape == (3, 3, 8, 8)
    assert torch.equal(gt_crop[..., ::2, ::2], lq_crop)  # same region of every sample
    lq_crop, gt_crop = schedule(lq, gt, 4)
    assert lq_crop.shape == (1, 3, 8, 8) and gt_crop.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match='need the same non-zero length'):
        ProgressiveSchedule(iters=[1], gt_sizes=[8, 16], mini_batch_sizes=[1])


def test_progressive_options_are_checked_against_the_loader():
    opt = model_options(progressive={'iters': [2, 3], 'gt_sizes': [16, 32], 'mini_batch_sizes': [2, 1]})
    opt['datasets'] = {'train': {'gt_size': 24, 'batch_size_per_gpu': 2}}
    with pytest.raises(ValueError, match=r'exceed datasets.train.gt_size = 24'):
        RestorationModel(deepcopy(opt))
    opt['datasets']['train']['gt_size'] = 32
    model = RestorationModel(opt)
    model.feed_data({'lq': torch.rand(2, 3, 32, 32), 'gt': torch.rand(2, 3, 32, 32)})
    model.optimize_parameters(1)
    assert model.output.shape == (2, 3, 16, 16)
    model.feed_data({'lq': torch.rand(2, 3, 32, 32), 'gt': torch.rand(2, 3, 32, 32)})
    model.optimize_parameters(3)
    assert model.output.shape == (1, 3, 32, 32)


def test_validation_pads_to_the_window_and_crops_back():
    opt = model_options()
    opt['val'] = {'window_size': 8}
    model = RestorationModel(opt)
    shapes = []
    model.net_g.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
    model.feed_data({'lq': torch.rand(1, 3, 13, 18)})
    model.test()
    assert shapes == [(1, 3, 16, 24)] and model.output.shape == (1, 3, 13, 18)
    assert model.net_g.training  # back to training mode after validation
    model.opt['val'] = {}
    model.net_g.size_multiple = 4  # a network's own requirement (Restormer: 8) applies without window_size
    model.feed_data({'lq': torch.rand(1, 3, 13, 18)})
    model.test()
    assert shapes[-1] == (1, 3, 16, 20) and model.output.shape == (1, 3, 13, 18)
