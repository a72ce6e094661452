"""The seam: one declared table of BasicSR names, switches that act only for plugin runs, BasicSR's own runs
unchanged (bit for bit), the plugin's guarantees in its models, fair starts, and failures that archive nothing."""
import inspect
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import basicsr
import basicsr.test
import basicsr.train
import pytest
import torch
import yaml
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models.base_model import BaseModel
from basicsr.utils import options as basicsr_options

from ddr_basicsr.host import pipelines, seam
from ddr_basicsr.host.run_options import (
    PluginOptions,
    argument_parser,
    force_yml,
    parse_plugin_options,
    peek_options,
    uses_plugin,
)
from ddr_basicsr.training.resume import ResumableSampler
from tiny_training import REPO_ROOT, read_logs, subprocess_env, write_options, write_paired_dataset

BASICSR_OPTIONS = Path(__file__).parent / 'data' / 'basicsr_options'
#: Every BasicSR name the plugin may rebind. A new entry must be added here and to the README on purpose.
DECLARED = ['basicsr.utils.options.parse_options', 'basicsr.train.parse_options', 'basicsr.test.parse_options',
            'basicsr.train.load_resume_state', 'basicsr.train.EnlargedSampler', 'basicsr.train.build_dataloader']


# ---------------------------------------------------------------------------------------------------------------------
# the table

def test_the_table_declares_exactly_these_entries():
    assert [entry.label for entry in seam.SEAM] == DECLARED


@pytest.mark.parametrize('label', DECLARED)
def test_each_entry_is_a_switch_around_basicsrs_own_object(label):
    module_name, name = label.rsplit('.', 1)
    installed = getattr(sys.modules[module_name], name)
    stock = getattr(installed, seam.STOCK_ATTRIBUTE)
    assert installed.seam_entry.label == label
    assert stock.__module__.startswith('basicsr.') and not stock.__module__.startswith('ddr_basicsr')
    assert inspect.signature(installed) == inspect.signature(stock)


@pytest.mark.parametrize('entry', seam.SEAM, ids=lambda entry: entry.label)
def test_a_missing_or_changed_target_is_an_error_naming_the_entry_and_the_version(entry):
    renamed = types.SimpleNamespace(**{f'{entry.name}_v2': lambda *args: None})
    expected = (rf'seam entry {re.escape(entry.label)} is missing in the installed basicsr '
                rf'{re.escape(basicsr.__version__)}; ddr-basicsr supports basicsr 1\.4\.2')
    with pytest.raises(seam.SeamError, match=expected):
        seam.stock_target(entry, renamed)
    changed = types.SimpleNamespace(**{entry.name: lambda options, other=None: None})
    with pytest.raises(seam.SeamError, match=rf"{re.escape(entry.label)} has the parameters \('options', 'other'\)"):
        seam.stock_target(entry, changed)


def test_install_checks_every_target_before_changing_any():
    module = types.ModuleType('fake_basicsr_train')
    module.load_resume_state = lambda opt: 'stock'
    entries = (seam.SeamEntry('fake_basicsr_train', 'load_resume_state', ('opt', ), 'os:getcwd', 'test'),
               seam.SeamEntry('fake_basicsr_train', 'build_dataloader', ('dataset', ), 'os:getcwd', 'test'))
    sys.modules['fake_basicsr_train'] = module
    try:
        with pytest.raises(seam.SeamError, match='fake_basicsr_train.build_dataloader is missing'):
            seam.install(entries)
        assert module.load_resume_state({}) == 'stock'
    finally:
        del sys.modules['fake_basicsr_train']


def test_through_the_start_up_file_a_failed_attach_is_one_line_and_basicsr_still_imports(tmp_path):
    broken = tmp_path / 'open_clip'
    broken.mkdir()
    (broken / '__init__.py').write_text("raise ImportError('this open_clip is broken')\n")
    environment = subprocess_env()
    environment['PYTHONPATH'] = f"{tmp_path}:{environment['PYTHONPATH']}"
    run = subprocess.run([sys.executable, '-c', 'import basicsr.train; print("basicsr works")'], env=environment,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == 'basicsr works', run.stderr[-2000:]
    assert '[ddr-basicsr] not attached to BasicSR (ImportError: this open_clip is broken)' in run.stderr


def test_importing_a_seam_module_before_basicsr_still_attaches():
    code = ('import ddr_basicsr.host.run_options, basicsr.train\n'
            'from ddr_basicsr.host import is_attached\n'
            'print(is_attached(), basicsr.train.parse_options.seam_entry.label)')
    run = subprocess.run([sys.executable, '-c', code], env=subprocess_env(), capture_output=True, text=True,
                         timeout=300)
    assert run.stdout.split() == ['True', 'basicsr.train.parse_options'], run.stderr[-2000:]


def test_a_users_own_basicsr_module_is_left_alone(tmp_path):
    (tmp_path / 'basicsr.py').write_text('VALUE = 41\n')
    run = subprocess.run([sys.executable, '-c', 'import basicsr; print(basicsr.VALUE + 1)'], cwd=tmp_path,
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == '42' and run.stderr == '', run.stderr


@pytest.mark.parametrize('value', ['0', 'false', 'OFF', 'no'])
def test_the_start_up_file_is_switched_off_by_the_usual_spellings(value):
    code = 'import sys; print("ddr_basicsr" in sys.modules, any("BasicsrImportHook" in repr(f) for f in sys.meta_path))'
    run = subprocess.run([sys.executable, '-c', code], env=subprocess_env(DDR_BASICSR_PLUGIN=value),
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ['False', 'False'], run.stderr


def test_basicsr_model_classes_keep_all_of_their_own_methods():
    for cls in (BaseModel, *(obj for _, obj in __import__('basicsr.utils.registry').utils.registry.MODEL_REGISTRY
                             if obj.__module__.startswith('basicsr.'))):
        for name, value in vars(cls).items():
            if inspect.isfunction(value):
                assert value.__module__ == cls.__module__, f'{cls.__name__}.{name} is {value.__module__}'


def test_the_switches_run_basicsrs_code_for_other_runs(monkeypatch):
    dataset = list(range(8))
    monkeypatch.setattr(seam.RUN, 'plugin_run', False)
    assert type(basicsr.train.EnlargedSampler(dataset, 1, 0, 1)) is EnlargedSampler
    monkeypatch.setattr(seam.RUN, 'plugin_run', True)
    assert type(basicsr.train.EnlargedSampler(dataset, 1, 0, 1)) is ResumableSampler


SNAPSHOT = '''
import importlib, inspect, json, re, sys
if {plugin_off}:
    try:
        import torchvision.transforms.functional_tensor
    except ModuleNotFoundError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms._functional_tensor')
import basicsr, basicsr.train, basicsr.test
names = {{}}
for module_name, module in sorted(sys.modules.items()):
    if module_name.split('.')[0] != 'basicsr' or module is None:
        continue
    for attribute, value in sorted(vars(module).items()):
        if callable(value):
            try:
                where = inspect.getfile(value)
            except TypeError:  # built-in
                where = re.sub(' at 0x[0-9a-f]+', '', repr(value))
            names[f'{{module_name}}.{{attribute}}'] = f'{{getattr(value, "__qualname__", "")}} in {{where}}'
            if inspect.isclass(value):
                for method, function in vars(value).items():
                    if callable(function):
                        names[f'{{module_name}}.{{attribute}}.{{method}}'] = getattr(function, '__module__', '')
print(json.dumps(names))
'''


def _basicsr_names(plugin_off: bool) -> dict:
    environment = subprocess_env(DDR_BASICSR_PLUGIN='0' if plugin_off else '1')
    run = subprocess.run([sys.executable, '-c', SNAPSHOT.format(plugin_off=plugin_off)], env=environment,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.slow
def test_with_the_plugin_only_the_declared_names_of_basicsr_differ():
    without, with_plugin = _basicsr_names(plugin_off=True), _basicsr_names(plugin_off=False)
    changed = sorted(name for name in without if with_plugin.get(name) != without[name]
                     and not name.startswith(tuple(f'{entry}.' for entry in DECLARED)))  # members of a replaced class
    assert changed == sorted(DECLARED)
    assert all(with_plugin[name].endswith(str(Path('ddr_basicsr', 'host', 'seam.py'))) for name in DECLARED)


# ---------------------------------------------------------------------------------------------------------------------
# which runs are plugin runs

def test_a_run_is_a_plugin_run_when_it_names_anything_the_plugin_registered():
    stock = yaml.safe_load((BASICSR_OPTIONS / 'train_MSRResNet_x4.yml').read_text())
    assert not uses_plugin(stock)
    for path, value in (('model_type', 'RestorationModel'), ('network_g.type', 'NAFNet'),
                        ('train.pixel_opt.type', 'PSNRLoss'), ('val.metrics.psnr.type', 'calculate_ddr')):
        changed = json.loads(json.dumps(stock))
        *sections, key = path.split('.')
        target = changed
        for section in sections:
            target = target[section]
        target[key] = value
        assert uses_plugin(changed), path
    assert not uses_plugin(None) and not uses_plugin(['a', 'list'])


def test_peek_reads_force_yml_and_never_runs_python_tags(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'x.yml'
    path.write_text(f'model_type: SRModel\nhook: !!python/object/apply:os.system ["touch {marker}"]\n')
    opt = peek_options(['-opt', str(path), '--force_yml', 'model_type=RestorationModel'])
    assert opt['model_type'] == 'RestorationModel' and opt['hook'] is None and not marker.exists()
    assert peek_options(['-opt', str(tmp_path / 'missing.yml')]) is None


@pytest.mark.parametrize('entry, message', [
    ('name"];open("x","w");opt["name=y', 'is not a section of the option file'),
    ('train:nonexist:x=1', 'train:nonexist is not a section of the option file'),
    ('train', r"write section:key=value"),
])
def test_force_yml_key_paths_are_never_executed(entry, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = {'name': 'run', 'train': {'ema_decay': 0.9}}
    if 'open(' in entry:
        force_yml(opt, [entry])  # a new top-level key of that odd name, nothing run
        assert opt[entry.split('=')[0]] == 'y' and not (tmp_path / 'x').exists()
        with pytest.raises(ValueError, match=message):
            force_yml(opt, [entry.replace('name"]', 'name"]:a', 1)])
    else:
        with pytest.raises(ValueError, match=message):
            force_yml(opt, [entry])
    force_yml(opt, ['train:ema_decay=0.5', 'train:new_key=[1, 2]'])
    assert opt['train'] == {'ema_decay': 0.5, 'new_key': [1, 2]}


def test_the_command_line_accepts_torch_distributed_launch_spelling():
    assert argument_parser().parse_args(['-opt', 'x.yml', '--local-rank=3']).local_rank == 3
    assert argument_parser().parse_args(['-opt', 'x.yml', '--local_rank', '2']).local_rank == 2


def test_the_chosen_root_survives_train_pipeline_setting_it_again():
    opt = PluginOptions([('name', 'x'), ('root_path', '/chosen')])
    opt['root_path'] = '/site-packages'
    assert opt['root_path'] == '/chosen'
    import copy
    assert copy.deepcopy(opt)['root_path'] == '/chosen'


# ---------------------------------------------------------------------------------------------------------------------
# BasicSR's own run, with and without the plugin

def stock_msrresnet(data: Path) -> dict:
    """BasicSR's train_MSRResNet_x4.yml on the CPU with a tiny network, tiny data and four iterations."""
    opt = yaml.safe_load((BASICSR_OPTIONS / 'train_MSRResNet_x4.yml').read_text())
    opt.update(num_gpu=0, name='stock_msrresnet')
    opt['network_g'].update(num_feat=8, num_block=1)
    for phase, dataset in opt['datasets'].items():
        split = 'train' if phase == 'train' else 'val'
        dataset.update(dataroot_gt=str(data / split / 'gt'), dataroot_lq=str(data / split / 'lq'))
        dataset.pop('meta_info_file', None)
    opt['datasets']['train'].update(gt_size=32, num_worker_per_gpu=0, batch_size_per_gpu=2)
    opt['train']['total_iter'] = 4
    opt['val'].update(val_freq=2)
    opt['val']['metrics'].pop('niqe')  # NIQE needs images of a few hundred pixels, not 48-px tiles
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


WITHOUT_PLUGIN = '''
import importlib, runpy, sys
try:
    import torchvision.transforms.functional_tensor
except ModuleNotFoundError:
    sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
        'torchvision.transforms._functional_tensor')
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _comparable_log(folder: Path) -> str:
    """The log without times and durations (the rest must be equal)."""
    text = read_logs(folder)
    text = re.sub(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ', '', text, flags=re.MULTILINE)
    text = re.sub(r'(eta|time \(data\)|Time consumed|time)[:\s]+[^\]\s,]+(\s*\([^)]*\))?', r'\1 _', text)
    return re.sub(r'Version Information:.*?(?=\n\S)', '', text, flags=re.DOTALL)


@pytest.mark.slow
def test_a_stock_basicsr_run_is_bit_identical_with_and_without_the_plugin(tmp_path):
    checkout = tmp_path / 'BasicSR'
    (checkout / 'basicsr').mkdir(parents=True)
    script = checkout / 'basicsr' / 'train.py'
    script.write_text(Path(basicsr.__file__).with_name('train.py').read_text())
    data = write_paired_dataset(tmp_path / 'data', scale=4)
    yml = write_options(tmp_path / 'train_MSRResNet_x4.yml', stock_msrresnet(data))
    runs = {}
    for label, command, plugin in (('off', [sys.executable, '-c', WITHOUT_PLUGIN, str(script)], '0'),
                                   ('on', [sys.executable, str(script)], '1')):
        run = subprocess.run([*command, '-opt', yml], cwd=tmp_path, env=subprocess_env(DDR_BASICSR_PLUGIN=plugin),
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert '[ddr-basicsr]' not in run.stderr
        experiment = checkout / 'experiments' / 'stock_msrresnet'
        runs[label] = experiment.rename(tmp_path / f'experiment_{label}')
    files = {label: sorted(str(p.relative_to(folder)) for p in folder.rglob('*') if p.suffix != '.log')
             for label, folder in runs.items()}
    assert files['on'] == files['off'] and 'models/net_g_4.pth' in files['on']
    for name in ('models/net_g_4.pth', 'models/net_g_latest.pth'):
        on, off = (torch.load(runs[label] / name, weights_only=True)['params'] for label in ('on', 'off'))
        assert on.keys() == off.keys() and all(torch.equal(on[key], off[key]) for key in on)
    state_on, state_off = (torch.load(runs[label] / 'training_states' / '4.state', weights_only=True)
                           for label in ('on', 'off'))
    assert set(state_on) == set(state_off) == {'epoch', 'iter', 'optimizers', 'schedulers'}
    assert _comparable_log(runs['on']) == _comparable_log(runs['off'])


# ---------------------------------------------------------------------------------------------------------------------
# fair starts

PAIRED_RUNS = ['nafnet_gopro_psnr.yml', 'nafnet_gopro_ddr.yml', 'nafnet_gopro_lpips.yml']


def shrunk(name: str, data: Path, clip_path: str) -> dict:
    """A paper option file on the CPU: tiny NAFNet, tiny data, offline loss weights, its seed and loss blocks kept."""
    opt = yaml.safe_load((REPO_ROOT / 'options' / name).read_text())
    opt.update(num_gpu=0, name=Path(name).stem)
    opt['network_g'].update(width=8, enc_blk_nums=[1, 1], middle_blk_num=1, dec_blk_nums=[1, 1])
    for phase, dataset in opt['datasets'].items():
        split = 'train' if phase == 'train' else 'val'
        dataset.update(dataroot_gt=str(data / split / 'gt'), dataroot_lq=str(data / split / 'lq'), io_backend={
            'type': 'disk'}, num_worker_per_gpu=0)
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2)
    for block in opt['train'].values():
        if isinstance(block, dict) and block.get('type') == 'DDRLoss':
            block.update(pretrained=clip_path, model='ViT-B-32')
        elif isinstance(block, dict) and block.get('type') == 'LPIPSLoss':
            block['pretrained'] = False
    for metric in opt['val']['metrics'].values():
        if metric['type'] == 'calculate_ddr':
            metric.update(pretrained=clip_path, model='ViT-B-32')
    return opt


def test_the_paper_pairs_start_from_the_same_network(tiny_clip_path, tmp_path, monkeypatch):
    from basicsr.models import build_model
    data = write_paired_dataset(tmp_path / 'data')
    networks = {}
    for name in PAIRED_RUNS:
        opt = shrunk(name, data, tiny_clip_path)
        assert opt['manual_seed'] == 10
        yml = write_options(tmp_path / name, opt)
        monkeypatch.setattr(seam.RUN, 'forced', True)
        parsed, _ = parse_plugin_options(str(tmp_path), True, ['-opt', yml])
        networks[name] = build_model(parsed).net_g.state_dict()
    blocks = {name: sorted(key for key in yaml.safe_load((REPO_ROOT / 'options' / name).read_text())['train']
                           if key.endswith('_opt')) for name in PAIRED_RUNS}
    assert len({tuple(keys) for keys in blocks.values()}) == 3  # the runs differ in their loss blocks
    reference = networks[PAIRED_RUNS[0]]
    for name in PAIRED_RUNS[1:]:
        assert all(torch.equal(reference[key], networks[name][key]) for key in reference), name


def test_the_demos_two_runs_start_from_the_same_network(tiny_clip_path, tmp_path, monkeypatch):
    from basicsr.models import build_model

    from ddr_basicsr.tools.demo import demo_options
    data = write_paired_dataset(tmp_path / 'data')
    for side in ('train', 'val'):  # the demo's folder names
        for old, new in (('gt', 'sharp'), ('lq', 'blur')):
            (data / side / old).rename(data / side / new)
    monkeypatch.setattr(seam.RUN, 'forced', True)
    networks = []
    for with_ddr in (False, True):
        opt = demo_options(f'demo_{with_ddr}', data, 4, tiny_clip_path, with_ddr, batch_size=2, patch=32, width=8)
        parsed, _ = parse_plugin_options(str(tmp_path), True, ['-opt', write_options(tmp_path / 'd.yml', opt)])
        networks.append(build_model(parsed).net_g.state_dict())
    assert all(torch.equal(networks[0][key], networks[1][key]) for key in networks[0])


# ---------------------------------------------------------------------------------------------------------------------
# failures that the checks can see archive nothing

def train_in_process(tmp_path: Path, opt: dict, *args: str) -> None:
    yml = write_options(tmp_path / f"{opt['name']}.yml", opt)
    pipelines.train_main(['--root', str(tmp_path), '-opt', yml, *args])


def _previous_run(tmp_path: Path, name: str) -> Path:
    experiment = tmp_path / 'experiments' / name
    experiment.mkdir(parents=True)
    (experiment / 'keep.txt').write_text('previous run')
    return experiment


@pytest.mark.parametrize('change, args, error, message', [
    (lambda opt: None, ['--force_yml', 'train:optim_g:lr=1e-4'], TypeError,
     r"train.optim_g.lr is the string '1e-4'.*in the file or in --force_yml"),
    (lambda opt: opt['logger'].update(use_tb_logger=True, wandb={'project': 'p'}), [], ModuleNotFoundError,
     'logger.wandb.project is set but wandb is not installed'),
    (lambda opt: opt['logger'].update(wandb={'project': 'p'}), [], ValueError,
     'logger.wandb.project is set but logger.use_tb_logger is not true'),
    (lambda opt: opt.update(model_type='SRModel') or opt['train'].update(
        pixel_opt={'type': 'L1Loss'}, perceptual_opt=opt['train'].pop('ddr_opt')), [], ValueError,
     r"train.perceptual_opt: SRModel calls this slot as l_percep, l_style = loss\(output, gt\).*DDRLoss returns one "
     r"value.*'ddr_opt: \{type: DDRLoss, loss_weight: ...\}', under model_type: RestorationModel"),
    (lambda opt: opt['train']['ddr_opt'].update(reduction='none'), [], ValueError,
     r"train.ddr_opt.reduction is 'none' \(one value per image\)"),
    (lambda opt: None, ['--force_yml', 'train:nonexist:x=1'], ValueError,
     'train:nonexist is not a section of the option file'),
])
def test_failures_the_checks_can_see_archive_nothing(change, args, error, message, dataset_root, tiny_clip_path,
                                                    tmp_path):
    from tiny_training import make_options
    opt = make_options(dataset_root, tiny_clip_path, name='guarded')
    change(opt)
    experiment = _previous_run(tmp_path, 'guarded')
    with pytest.raises(error, match=message):
        train_in_process(tmp_path, opt, *args)
    assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['guarded']
    assert (experiment / 'keep.txt').read_text() == 'previous run' and not (tmp_path / 'tb_logger').exists()


def test_basicsr_options_module_still_has_its_own_helpers():
    assert basicsr_options._postprocess_yml_value.__module__ == 'basicsr.utils.options'
    assert basicsr_options.ordered_yaml.__module__ == 'basicsr.utils.options'
