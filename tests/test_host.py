"""The seam's pieces: safe YAML, CPU/root-based resume, gloo init, CPU DDP of the plugin's models, per-run logger."""
import logging
import multiprocessing
import os
import socket
from collections import OrderedDict

import basicsr.train as basicsr_train
import pytest
import torch
import torch.distributed as dist
import yaml
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ddr_basicsr.host import options as host_options
from ddr_basicsr.host import pipelines, run_options, training_loop
from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
from ddr_basicsr.training import distributed


def test_safe_loader_keeps_order_and_floats(tmp_path):
    path = tmp_path / 'opt.yml'
    path.write_text('zeta: 1\nalpha: {lr: !!float 2e-4, betas: [0.9, 0.99]}\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n')
    opt = host_options.load_yaml(str(path))
    assert isinstance(opt, OrderedDict) and list(opt) == ['zeta', 'alpha', 'base', 'merged']
    assert opt['alpha']['lr'] == pytest.approx(2e-4) and opt['alpha']['betas'] == [0.9, 0.99]
    assert dict(opt['merged']) == {'x': 1, 'y': 2}
    # the global loaders are left alone
    assert type(yaml.load('{a: 1}', Loader=yaml.SafeLoader)) is dict


def test_safe_loader_rejects_python_tags(tmp_path):
    marker = tmp_path / 'executed'
    path = tmp_path / 'evil.yml'
    path.write_text(f'name: x\nhook: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(yaml.constructor.ConstructorError, match=r"'!!python/object/apply:os.system' is not allowed"):
        host_options.load_yaml(str(path))
    assert not marker.exists()


def test_dumper_round_trips_ordered_dicts():
    data = OrderedDict([('b', 1), ('a', OrderedDict([('z', [1, 2]), ('y', None)]))])
    text = yaml.dump(data, Dumper=host_options.OrderedSafeDumper)
    assert yaml.load(text, Loader=host_options.OrderedSafeLoader) == data
    assert text.index('b:') < text.index('a:')


@pytest.mark.parametrize('value, expected', [
    ('[1, 2]', [1, 2]), ('none', None), ('~', None), ('!!float 1e-4', 1e-4), ('true', True), ('3', 3),
    ('0.5', 0.5), ('experiments/x/6.state', 'experiments/x/6.state'),
    ("[__import__('os').getcwd()]", ["__import__('os').getcwd()"]),  # text, never evaluated
])
def test_force_yml_values_are_parsed_as_yaml(value, expected):
    assert host_options.parse_force_yml_value(value) == expected


def test_force_yml_value_error_names_the_value():
    with pytest.raises(ValueError, match=r"--force_yml: cannot parse the value '\[1, 2'"):
        host_options.parse_force_yml_value('[1, 2')


def test_latest_training_state(tmp_path):
    assert training_loop.latest_training_state(str(tmp_path / 'missing')) is None
    assert training_loop.latest_training_state(str(tmp_path)) is None
    for name in ('3.state', '12.state', '9.state', 'notes.state', '20.txt'):
        (tmp_path / name).write_bytes(b'')
    assert training_loop.latest_training_state(str(tmp_path)) == str(tmp_path / '12.state')


def _resume_options(root, auto_resume, resume_state=None):
    experiment = root / 'experiments' / 'run'
    return {
        'name': 'run', 'auto_resume': auto_resume, 'num_gpu': 0, 'network_g': {'type': 'NAFNet'},
        'path': {'resume_state': resume_state, 'training_states': str(experiment / 'training_states'),
                 'models': str(experiment / 'models'), 'experiments_root': str(experiment)},
    }


def test_auto_resume_looks_under_the_root_not_the_cwd(tmp_path, monkeypatch):
    states = tmp_path / 'root' / 'experiments' / 'run' / 'training_states'
    models = states.parent / 'models'
    states.mkdir(parents=True)
    models.mkdir()
    for iteration in (3, 6):
        torch.save({'iter': iteration, 'epoch': 1, 'optimizers': [{'w': torch.ones(2)}], 'schedulers': []},
                   states / f'{iteration}.state')
        torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    opt = _resume_options(tmp_path / 'root', auto_resume=True)
    state = training_loop.load_resume_state(opt)
    assert state['iter'] == 6 and state['optimizers'][0]['w'].device.type == 'cpu'
    assert opt['path']['resume_state'] == str(states / '6.state')
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'root' / 'experiments' / 'run' / 'models' /
                                                    'net_g_6.pth')


def test_resume_without_state_and_with_a_missing_file(tmp_path, capsys):
    assert training_loop.load_resume_state(_resume_options(tmp_path, auto_resume=True)) is None
    looked_in = tmp_path / 'experiments' / 'run' / 'training_states'
    assert f'--auto_resume: no training state in {looked_in}; training starts at iteration 0' in capsys.readouterr().err
    assert training_loop.load_resume_state(_resume_options(tmp_path, auto_resume=False)) is None
    missing = str(tmp_path / 'nope' / '5.state')
    with pytest.raises(FileNotFoundError, match=r'path.resume_state: training state .*5.state. does not exist'):
        training_loop.load_resume_state(_resume_options(tmp_path, auto_resume=False, resume_state=missing))


def test_auto_resume_names_states_under_another_root(tmp_path, monkeypatch, capsys):
    other_states = tmp_path / 'experiments' / 'run' / 'training_states'
    other_states.mkdir(parents=True)
    torch.save({'iter': 3}, other_states / '3.state')
    monkeypatch.chdir(tmp_path)
    opt = _resume_options(tmp_path / 'elsewhere', auto_resume=True)
    (tmp_path / 'elsewhere' / 'experiments' / 'run').mkdir(parents=True)
    assert training_loop.load_resume_state(opt) is None
    err = capsys.readouterr().err
    assert f"{tmp_path / 'elsewhere' / 'experiments' / 'run'} has no state to resume from" in err
    assert f"{tmp_path / 'experiments' / 'run'} holds training states of this experiment under another root" in err
    assert f'--root {tmp_path}' in err


def test_root_inside_site_packages_becomes_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    installed = tmp_path / 'venv' / 'lib' / 'site-packages'
    assert run_options.choose_root(str(installed)) == str(tmp_path)
    assert f"BasicSR's root folder {installed} is inside an installed environment" in capsys.readouterr().err
    checkout = tmp_path / 'BasicSR'
    assert run_options.choose_root(str(checkout)) == str(checkout)
    assert run_options.is_inside_installed_environment(os.path.dirname(basicsr_train.__file__))


def test_backend_falls_back_to_gloo_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert distributed.resolve_dist_backend('nccl') == 'gloo'
    assert distributed.resolve_dist_backend('gloo') == 'gloo'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert distributed.resolve_dist_backend('nccl') == 'nccl'


def test_unknown_launcher_is_an_error():
    with pytest.raises(ValueError, match="invalid launcher 'mpi'"):
        distributed.init_dist('mpi')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class _Model(TrainingGuaranteesMixin, BaseModel):
    def __init__(self):
        super().__init__({'num_gpu': 0, 'is_train': False, 'dist': True})


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_single_process_gloo_init_and_cpu_ddp(monkeypatch):
    for key, value in {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1',
                       'MASTER_PORT': str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    saved_method = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(None, force=True)
    try:
        distributed.init_dist('pytorch')  # basicsr passes no backend: nccl by default
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
        assert multiprocessing.get_start_method() == 'fork'
        wrapped = _Model().model_to_device(nn.Linear(2, 1))
        assert isinstance(wrapped, DistributedDataParallel) and wrapped.device_ids is None
        wrapped(torch.ones(1, 2)).sum().backward()
        assert wrapped.module.weight.grad is not None
    finally:
        dist.destroy_process_group()
        multiprocessing.set_start_method(saved_method, force=True)


def test_model_to_device_without_dist_returns_the_module():
    model = _Model()
    model.opt['dist'] = False
    net = nn.Linear(2, 1)
    assert model.model_to_device(net) is net


def test_reset_root_logger_gives_each_run_its_own_file(tmp_path):
    pipelines.reset_root_logger()
    get_root_logger(log_file=str(tmp_path / 'first.log')).info('first run')
    pipelines.reset_root_logger()
    get_root_logger(log_file=str(tmp_path / 'second.log')).info('second run')
    pipelines.reset_root_logger()
    assert 'first run' in (tmp_path / 'first.log').read_text()
    second = (tmp_path / 'second.log').read_text()
    assert 'second run' in second and 'first run' not in second
    assert logging.getLogger('basicsr').handlers == []


class _Payload:
    """Unpickling it would create a file: what a hostile checkpoint does."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _network_model(pretrained: str) -> dict:
    return {'name': 'unit', 'model_type': 'RestorationModel', 'scale': 1, 'is_train': False, 'dist': False,
            'num_gpu': 0, 'network_g': {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1,
                                        'dec_blk_nums': [1]},
            'path': {'pretrain_network_g': pretrained, 'param_key_g': 'params', 'strict_load_g': True}}


def test_networks_load_with_weights_only_even_when_torch_is_told_otherwise(tmp_path, monkeypatch):
    from basicsr.models import build_model
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'code-ran'
    hostile = tmp_path / 'net_g_hostile.pth'
    torch.save({'params': _Payload(str(marker))}, hostile)
    with pytest.raises(ValueError, match=r"net_g_hostile.pth' is not a plain state dict: it holds Python objects"):
        build_model(_network_model(str(hostile)))
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match=r"network file '.*absent.pth' does not exist"):
        build_model(_network_model(str(tmp_path / 'absent.pth')))
    torch.manual_seed(0)
    reference = build_model(_network_model(None)).net_g
    plain = tmp_path / 'net_g_plain.pth'
    torch.save({'params': {f'module.{key}': value for key, value in reference.state_dict().items()}}, plain)
    loaded = build_model(_network_model(str(plain))).net_g
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), loaded.state_dict().values()))
