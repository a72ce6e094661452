"""The basicsr 1.4.2 host fixes: safe YAML, CPU/root-based resume, gloo init, CPU DDP, per-run logger."""
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ddr_basicsr import host_fixes
import basicsr.train as basicsr_train
from basicsr.models.base_model import BaseModel
from basicsr.utils import dist_util, get_root_logger, options


def test_apply_installs_every_fix():
    host_fixes.apply()
    host_fixes.apply()  # idempotent
    assert options.ordered_yaml is host_fixes.ordered_yaml
    assert options._postprocess_yml_value is host_fixes.parse_force_yml_value
    assert options.init_dist is host_fixes.init_dist and dist_util.init_dist is host_fixes.init_dist
    assert basicsr_train.load_resume_state is host_fixes.load_resume_state
    assert BaseModel.model_to_device is host_fixes.model_to_device


def test_safe_loader_keeps_order_and_floats(tmp_path):
    path = tmp_path / 'opt.yml'
    path.write_text('zeta: 1\nalpha: {lr: !!float 2e-4, betas: [0.9, 0.99]}\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n')
    opt = host_fixes.load_yaml(str(path))
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
        host_fixes.load_yaml(str(path))
    assert not marker.exists()


def test_dumper_round_trips_ordered_dicts():
    data = OrderedDict([('b', 1), ('a', OrderedDict([('z', [1, 2]), ('y', None)]))])
    text = yaml.dump(data, Dumper=host_fixes.OrderedSafeDumper)
    assert yaml.load(text, Loader=host_fixes.OrderedSafeLoader) == data
    assert text.index('b:') < text.index('a:')


@pytest.mark.parametrize('value, expected', [
    ('[1, 2]', [1, 2]), ('none', None), ('~', None), ('!!float 1e-4', 1e-4), ('true', True), ('3', 3),
    ('0.5', 0.5), ('experiments/x/6.state', 'experiments/x/6.state'),
    ("[__import__('os').getcwd()]", ["__import__('os').getcwd()"]),  # text, never evaluated
])
def test_force_yml_values_are_parsed_as_yaml(value, expected):
    assert host_fixes.parse_force_yml_value(value) == expected


def test_force_yml_value_error_names_the_value():
    with pytest.raises(ValueError, match=r"--force_yml: cannot parse the value '\[1, 2'"):
        host_fixes.parse_force_yml_value('[1, 2')


def test_latest_training_state(tmp_path):
    assert host_fixes.latest_training_state(str(tmp_path / 'missing')) is None
    assert host_fixes.latest_training_state(str(tmp_path)) is None
    for name in ('3.state', '12.state', '9.state', 'notes.state', '20.txt'):
        (tmp_path / name).write_bytes(b'')
    assert host_fixes.latest_training_state(str(tmp_path)) == str(tmp_path / '12.state')


def _resume_options(root, auto_resume, resume_state=None):
    experiment = root / 'experiments' / 'run'
    return {
        'auto_resume': auto_resume, 'num_gpu': 0, 'network_g': {'type': 'NAFNet'},
        'path': {'resume_state': resume_state, 'training_states': str(experiment / 'training_states'),
                 'models': str(experiment / 'models')},
    }


def test_auto_resume_looks_under_the_root_not_the_cwd(tmp_path, monkeypatch):
    states = tmp_path / 'root' / 'experiments' / 'run' / 'training_states'
    states.mkdir(parents=True)
    for iteration in (3, 6):
        torch.save({'iter': iteration, 'epoch': 1, 'optimizers': [{'w': torch.ones(2)}], 'schedulers': []},
                   states / f'{iteration}.state')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    opt = _resume_options(tmp_path / 'root', auto_resume=True)
    state = host_fixes.load_resume_state(opt)
    assert state['iter'] == 6 and state['optimizers'][0]['w'].device.type == 'cpu'
    assert opt['path']['resume_state'] == str(states / '6.state')
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'root' / 'experiments' / 'run' / 'models' /
                                                    'net_g_6.pth')


def test_resume_without_state_and_with_a_missing_file(tmp_path):
    assert host_fixes.load_resume_state(_resume_options(tmp_path, auto_resume=True)) is None
    assert host_fixes.load_resume_state(_resume_options(tmp_path, auto_resume=False)) is None
    missing = str(tmp_path / 'nope' / '5.state')
    with pytest.raises(FileNotFoundError, match=r'path.resume_state: training state .*5.state. does not exist'):
        host_fixes.load_resume_state(_resume_options(tmp_path, auto_resume=False, resume_state=missing))


def test_backend_falls_back_to_gloo_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert host_fixes.resolve_dist_backend('nccl') == 'gloo'
    assert host_fixes.resolve_dist_backend('gloo') == 'gloo'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert host_fixes.resolve_dist_backend('nccl') == 'nccl'


def test_unknown_launcher_is_an_error():
    with pytest.raises(ValueError, match="invalid launcher 'mpi'"):
        host_fixes.init_dist('mpi')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class _Model(BaseModel):
    def __init__(self):
        super().__init__({'num_gpu': 0, 'is_train': True, 'dist': True})


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_single_process_gloo_init_and_cpu_ddp(monkeypatch):
    for key, value in {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1',
                       'MASTER_PORT': str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    saved_method = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(None, force=True)
    try:
        host_fixes.init_dist('pytorch')  # basicsr passes no backend: nccl by default
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
        assert multiprocessing.get_start_method() == 'fork'
        wrapped = host_fixes.model_to_device(_Model(), nn.Linear(2, 1))
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
    assert host_fixes.model_to_device(model, net) is net


def test_reset_root_logger_gives_each_run_its_own_file(tmp_path):
    host_fixes.reset_root_logger()
    get_root_logger(log_file=str(tmp_path / 'first.log')).info('first run')
    host_fixes.reset_root_logger()
    get_root_logger(log_file=str(tmp_path / 'second.log')).info('second run')
    host_fixes.reset_root_logger()
    assert 'first run' in (tmp_path / 'first.log').read_text()
    second = (tmp_path / 'second.log').read_text()
    assert 'second run' in second and 'first run' not in second
    assert logging.getLogger('basicsr').handlers == []


HOOK_CHECK = '''
import site, sys
site.addsitedir(sys.argv[1])
assert 'ddr_basicsr_plugin_hook' in sys.modules
assert 'torch' not in sys.modules and 'ddr_basicsr' not in sys.modules  # nothing heavy before basicsr
import basicsr
from basicsr.utils import options
from basicsr.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY
assert 'RestorationModel' in MODEL_REGISTRY and 'DDRLoss' in LOSS_REGISTRY
assert options.ordered_yaml.__module__ == 'ddr_basicsr.host_fixes'
print('plugin loaded')
'''


def test_pth_hook_loads_the_plugin_into_stock_basicsr(tmp_path):
    from ddr_basicsr import basicsr_plugin_hook
    pth = basicsr_plugin_hook.install(str(tmp_path))
    assert os.path.basename(pth) == 'ddr_basicsr_plugin.pth' and len(open(pth).read().splitlines()) == 1
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, 'PYTHONPATH': repo_root}
    run = subprocess.run([sys.executable, '-c', HOOK_CHECK, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and 'plugin loaded' in run.stdout, run.stderr[-2000:]
    assert basicsr_plugin_hook.uninstall(str(tmp_path)) == pth and not os.path.exists(pth)
    assert basicsr_plugin_hook.uninstall(str(tmp_path)) is None
