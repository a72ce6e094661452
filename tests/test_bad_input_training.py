"""Hostile and careless input to training and testing (issue 27, round three): each case stops before anything is
written, with an error naming the option or file, and the previous run of the experiment stays as it was."""
import fcntl
import re
from pathlib import Path

import pytest
import torch
import yaml

from ddr_basicsr.data.synthetic import write_synthetic_pairs
from ddr_basicsr.host import pipelines, training_loop
from ddr_basicsr.host.pipelines import train_main
from ddr_basicsr.training import checkpoints
from tiny_training import make_options


@pytest.fixture(scope='module')
def pairs(tmp_path_factory) -> Path:
    return write_synthetic_pairs(tmp_path_factory.mktemp('pairs'), {'train': 2, 'val': 1}, size=32)


def options(pairs: Path, name: str = 'careless') -> dict:
    opt = make_options(pairs, None, name=name)
    del opt['train']['ddr_opt']
    return opt


def write(path: Path, opt: dict) -> str:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


def _set(opt: dict, dotted: str, value) -> None:
    *sections, key = dotted.split('.')
    for section in sections:
        opt = opt.setdefault(section, {})
    opt[key] = value


def _network_file(path: Path, content) -> str:
    torch.save(content, path) if content is not None else path.write_bytes(b'')
    return str(path)


CASES = [  # (case id, change of the options: (opt, tmp_path) -> None, error message)
    ('O10-total-iter-string', lambda o, t: _set(o, 'train.total_iter', '1000'),
     r"train.total_iter must be a positive integer, got '1000'"),
    ('O11-total-iter-zero', lambda o, t: _set(o, 'train.total_iter', 0), r'train.total_iter must be a positive'),
    ('O11-total-iter-negative', lambda o, t: _set(o, 'train.total_iter', -5), r'train.total_iter must be a positive'),
    ('O12-print-freq-zero', lambda o, t: _set(o, 'logger.print_freq', 0), r'logger.print_freq must be a number of '),
    ('O12-save-freq-zero', lambda o, t: _set(o, 'logger.save_checkpoint_freq', 0), r'logger.save_checkpoint_freq'),
    ('O14-val-metric-typo', lambda o, t: o['val'].update(metric=o['val'].pop('metrics')),
     r"val.metric is not an option .*did you mean 'metrics'"),
    ('O16-trian', lambda o, t: o.update(trian=o['train']), r"trian \(top level\) is not an option .*'train'"),
    ('N62-name-too-long', lambda o, t: o.update(name='x' * 240), r'name is 240 bytes long: .*shorten it'),
    ('N68-unknown-optimizer', lambda o, t: _set(o, 'train.optim_g.type', 'AdamX'),
     r"unknown optimizer 'AdamX' in train.optim_g \(did you mean 'Adam'\?\)"),
    ('N68-unknown-scheduler', lambda o, t: _set(o, 'train.scheduler.type', 'CosineLR'),
     r"unknown scheduler 'CosineLR' in train.scheduler"),
    ('N68-fp16', lambda o, t: _set(o, 'train.mixed_precision', 'fp16'), r'train.mixed_precision must be one of'),
    ('N68-missing-pretrain', lambda o, t: _set(o, 'path.pretrain_network_g', str(t / 'absent.pth')),
     r"path.pretrain_network_g: '.*absent.pth' cannot be read \(missing\)"),
    ('C5-empty-pretrain', lambda o, t: _set(o, 'path.pretrain_network_g', _network_file(t / 'e.pth', None)),
     r"path.pretrain_network_g: '.*e.pth' cannot be read \(empty"),
    ('C5-truncated-pretrain', lambda o, t: _set(o, 'path.pretrain_network_g', _truncated(t / 'cut.pth')),
     r"path.pretrain_network_g: '.*cut.pth' cannot be read"),
    ('C5-tensor-only-pretrain', lambda o, t: _set(o, 'path.pretrain_network_g',
                                                  _network_file(t / 't.pth', torch.zeros(3))),
     r"holds a Tensor, not a state dict"),
    ('C5-params-less-pretrain', lambda o, t: _set(o, 'path.pretrain_network_g',
                                                  _network_file(t / 'p.pth', {'weights': torch.zeros(3)})),
     r"has no 'params' entry \(its keys: weights\); for a bare state dict set path.param_key_g: ~"),
    ('O20-param-key-typo', lambda o, t: _set(o, 'path.param_key_g', 'params_emaa'),
     r"path.param_key_g must be one of ~, params, params_ema"),
    ('D5-gt-size-larger-than-images', lambda o, t: _set(o, 'datasets.train.gt_size', 64),
     r'train/gt/.*\(32x32\) is smaller than datasets.train.gt_size = 64, the training crop'),
    ('O23-image-too-small-for-calculate-ddr', lambda o, t: _set(
        o, 'val.metrics.ddr', {'type': 'calculate_ddr', 'pretrained': str(t / 'unused.pt')}), None),
]


def _truncated(path: Path) -> str:
    torch.save({'params': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    return str(path)


@pytest.mark.parametrize('case, change, message', CASES, ids=[case[0] for case in CASES])
def test_a_careless_training_option_stops_before_anything_is_written(case, change, message, pairs, tmp_path,
                                                                     tiny_clip_path, monkeypatch):
    opt = options(pairs)
    change(opt, tmp_path)
    if case.startswith('O23'):
        small = write_synthetic_pairs(tmp_path / 'small', {'train': 2, 'val': 1}, size=12)
        opt['datasets']['val'].update(dataroot_gt=str(small / 'val' / 'gt'), dataroot_lq=str(small / 'val' / 'lq'))
        opt['val']['metrics']['ddr']['pretrained'] = tiny_clip_path
        message = r'val/gt/.*\(12x12\): calculate_ddr needs both sides of the output to be at least 16 px'
    previous = tmp_path / 'experiments' / opt['name'][:200]
    if len(opt['name']) < 200:
        previous.mkdir(parents=True)
        (previous / 'keep.txt').write_text('previous run')
    with pytest.raises(Exception, match=message):
        train_main(['--root', str(tmp_path), '-opt', write(tmp_path / 'careless.yml', opt)])
    if len(opt['name']) < 200:
        assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == [opt['name']]
        assert (previous / 'keep.txt').read_text() == 'previous run'


def test_d4_empty_training_folders_are_named(pairs, tmp_path):
    opt = options(pairs)
    for side in ('gt', 'lq'):
        (tmp_path / 'empty' / side).mkdir(parents=True)
    opt['datasets']['train'].update(dataroot_gt=str(tmp_path / 'empty' / 'gt'),
                                    dataroot_lq=str(tmp_path / 'empty' / 'lq'))
    with pytest.raises(ValueError, match=r'datasets.train: the dataset is empty \(no images in its folders\)'):
        train_main(['--root', str(tmp_path), '-opt', write(tmp_path / 'x.yml', opt)])
    assert not (tmp_path / 'experiments' / opt['name']).exists()


def test_n58_a_second_run_of_a_running_experiment_is_refused(pairs, tmp_path):
    opt = options(pairs, name='busy')
    (tmp_path / 'experiments').mkdir()
    with open(tmp_path / 'experiments' / '.busy.lock', 'a') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process trains it
        with pytest.raises(RuntimeError, match=r"experiment 'busy' is being trained by another process now"):
            train_main(['--root', str(tmp_path), '-opt', write(tmp_path / 'busy.yml', opt)])
        assert not (tmp_path / 'experiments' / 'busy').exists()
    opt['train']['total_iter'] = 1
    opt['val']['val_freq'] = 1
    train_main(['--root', str(tmp_path), '-opt', write(tmp_path / 'busy.yml', opt)])  # free again
    assert (tmp_path / 'experiments' / 'busy' / 'models' / 'net_g_latest.pth').is_file()


def test_o21_a_test_run_without_a_trained_network_is_refused(pairs, tmp_path):
    opt = options(pairs, name='untrained')
    opt['datasets'] = {'test': opt['datasets']['val']}
    del opt['train']
    with pytest.raises(ValueError, match=r'path.pretrain_network_g is not set: the test would evaluate a randomly '
                                         r'initialised network'):
        pipelines.test_main(['--root', str(tmp_path), '-opt', write(tmp_path / 't.yml', opt)])
    assert not (tmp_path / 'results').exists()


def _state(path: Path, **entries) -> None:
    checkpoints.write_checkpoint({'epoch': 0, 'iter': 4, 'optimizers': [{'state': {}, 'param_groups': []}],
                                  'schedulers': [], **entries}, str(path))


@pytest.mark.parametrize('case, state, network, skipped_because', [
    ('N15-nan-adam-moments', {'optimizers': [{'state': {0: {'exp_avg': torch.tensor([float('nan')])}}}]},
     {'params': {'w': torch.ones(1)}}, r"optimizers\[0\]\['state'\]\[0\]\['exp_avg'\] holds NaN or Inf values"),
    ('N15-nan-weights', {}, {'params': {'w': torch.tensor([float('inf')])}},
     r"its network .*net_g_8.pth is \['params'\]\['w'\] holds NaN or Inf values"),
    ('N17-string-iter', {'iter': '7'}, {'params': {'w': torch.ones(1)}}, 'not a training state'),
    ('N17-empty-state', None, {'params': {'w': torch.ones(1)}}, 'not a training state'),
    ('N17-network-list', {}, [torch.ones(1)], r'its network .*net_g_8.pth is a list, not a state dict'),
])
def test_a_damaged_newest_state_is_skipped_with_the_reason(case, state, network, skipped_because, tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    _state(states / '4.state')
    torch.save({'params': {'w': torch.ones(1)}}, models / 'net_g_4.pth')
    if state is None:
        torch.save({}, states / '8.state')
    else:
        _state(states / '8.state', **{'iter': 8, **state})
    torch.save(network, models / 'net_g_8.pth')
    messages = []
    assert checkpoints.newest_readable_state(str(states), str(models), ['g'], messages.append) == \
        str(states / '4.state')
    assert re.search(skipped_because, messages[0]), messages


def test_n16_a_state_of_another_experiment_is_refused(tmp_path):
    _state(tmp_path / '4.state', experiment='someone_else')
    opt = {'name': 'mine', 'auto_resume': False, 'num_gpu': 0, 'network_g': {},
           'path': {'resume_state': str(tmp_path / '4.state'), 'models': str(tmp_path)}}
    with pytest.raises(RuntimeError, match=r"was saved by the experiment 'someone_else', not 'mine'; resume it under "
                                           'its own name'):
        training_loop.load_resume_state(opt)


def test_o22_validation_pads_an_image_smaller_than_the_window(pairs):
    from basicsr.models import build_model
    opt = options(pairs)
    opt.update(is_train=False, dist=False, rank=0, world_size=1)
    opt['val']['window_size'] = 16
    model = build_model(opt)
    output = model.forward_padded(model.net_g, torch.rand(1, 3, 6, 6))
    assert output.shape == (1, 3, 6, 6) and bool(torch.isfinite(output).all())
