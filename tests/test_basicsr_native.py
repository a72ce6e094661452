"""Stock BasicSR with ddr-basicsr installed: import order, the shipped .pth, stock entry points, existing configs."""
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Tuple

import basicsr
import pytest

from ddr_basicsr import train as ddr_train
from ddr_basicsr.host.options import load_yaml
from tiny_training import (
    REPO_ROOT,
    logged_iterations,
    make_options,
    read_logs,
    resumed_at,
    subprocess_env,
    write_options,
    write_paired_dataset,
)

BASICSR_OPTIONS = Path(__file__).parent / 'data' / 'basicsr_options'
PTH_NAME = 'ddr_basicsr_plugin.pth'
INSTALLED_PTH = Path(sysconfig.get_paths()['purelib']) / PTH_NAME
needs_install = pytest.mark.skipif(
    not INSTALLED_PTH.is_file(), reason='ddr-basicsr is not pip-installed here (no ddr_basicsr_plugin.pth in '
    'site-packages): these tests check what the install provides; scripts/run_tests.sh installs it')

REGISTERED = '''
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
assert {'DDRLoss', 'PSNRLoss', 'LPIPSLoss', 'ContextualLoss', 'PDLLoss', 'FDLLoss'} <= {n for n, _ in LOSS_REGISTRY}
assert {'NAFNet', 'NAFNetLocal', 'Restormer'} <= {n for n, _ in ARCH_REGISTRY}
assert 'RestorationModel' in MODEL_REGISTRY and 'calculate_ddr' in METRIC_REGISTRY
print(type(build_loss({'type': 'PSNRLoss'})).__name__)
'''


def start_python(code: str, cwd: Path, **env: str) -> subprocess.Popen:
    """A fresh interpreter of this environment, without the repository on sys.path (started, not awaited:
    the import-order checks run side by side, as each spends its time importing torch and basicsr)."""
    environment = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    environment.update(OMP_NUM_THREADS='1', **env)
    return subprocess.Popen([sys.executable, '-c', code], cwd=cwd, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> Tuple[int, str, str]:
    """(exit status, stdout, stderr) of a started interpreter."""
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


# ---------------------------------------------------------------------------------------------------------------------
# import order and the start-up file

@pytest.mark.slow
@needs_install
def test_import_orders_in_fresh_interpreters(tmp_path):
    """basicsr alone or first: the plugin is registered. DDR_BASICSR_PLUGIN=0 switches the start-up file off;
    ``from ddr_basicsr import DDR`` loads no basicsr, lpips or scikit-image; basicsr imported afterwards has the
    plugin registered."""
    basicsr_first = start_python(
        "import sys\nfrom basicsr.losses import build_loss\nassert 'ddr_basicsr.losses.ddr_loss' in sys.modules"
        + REGISTERED + 'import ddr_basicsr' + REGISTERED, tmp_path)
    core_first = start_python(
        "import sys\nassert 'ddr_basicsr' not in sys.modules\nfrom ddr_basicsr import DDR\n"
        "assert DDR.__name__ == 'DDR'\n"
        "print(sorted(m for m in ('basicsr', 'lpips', 'skimage') if m in sys.modules))\n"
        "from basicsr.losses import build_loss" + REGISTERED, tmp_path, DDR_BASICSR_PLUGIN='0')
    status, stdout, stderr = finish(basicsr_first)
    assert status == 0 and stdout.split() == ['PSNRLoss', 'PSNRLoss'], stderr[-3000:]
    status, stdout, stderr = finish(core_first)
    assert status == 0 and stdout.split() == ['[]', 'PSNRLoss'], stderr[-3000:]


def test_importing_the_package_registers_into_an_already_imported_basicsr():
    from basicsr.utils.registry import LOSS_REGISTRY

    import ddr_basicsr
    assert 'basicsr' in sys.modules and ddr_basicsr.host.is_attached() and 'DDRLoss' in LOSS_REGISTRY


@pytest.mark.slow
def test_pip_install_ships_the_pth_and_uninstall_removes_it(tmp_path):
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    built = subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path / 'wheel'),
                            str(REPO_ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / 'wheel').glob('ddr_basicsr-*.whl'))
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp_path / 'venv')], check=True, timeout=120)
    python = str(tmp_path / 'venv' / 'bin' / 'python')
    installed = subprocess.run([*pip, '--python', python, 'install', '--no-deps', '--no-index', '-q', str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    site_packages = Path(subprocess.check_output([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                                                  '["purelib"])'], text=True).strip())
    assert (site_packages / PTH_NAME).is_file()
    started = subprocess.check_output([python, '-c', 'import sys; print("ddr_basicsr" in sys.modules, '
                                       '"torch" in sys.modules, type(sys.meta_path[0]).__name__)'], text=True)
    assert started.split() == ['True', 'False', 'BasicsrImportHook']  # waiting for basicsr, nothing heavy loaded
    removed = subprocess.run([*pip, '--python', python, 'uninstall', '-y', '-q', 'ddr-basicsr'], capture_output=True,
                             text=True, timeout=300)
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert not (site_packages / PTH_NAME).exists()
    clean = subprocess.run([python, '-c', 'import sys; print("ddr_basicsr" in sys.modules)'], capture_output=True,
                           text=True, timeout=60)
    assert clean.stdout.strip() == 'False' and clean.stderr == ''


# ---------------------------------------------------------------------------------------------------------------------
# stock entry points: python -m basicsr.train / basicsr.test, python basicsr/train.py from a checkout

def run_stock(args, cwd: Path) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                         timeout=600)
    return run


def short_job(dataset_root: Path, clip_path: str, name: str, total_iter: int) -> dict:
    opt = make_options(dataset_root, clip_path, name=name)
    opt['train'].update(total_iter=total_iter, scheduler={'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5})
    opt['val'].update(val_freq=3, save_img=False)
    opt['logger']['save_checkpoint_freq'] = 3
    return opt


@pytest.mark.slow
@needs_install
def test_stock_module_resumes_on_cpu_and_tests(dataset_root, tiny_clip_path, tmp_path):
    work = tmp_path / 'work'
    yml = write_options(tmp_path / 'job.yml', short_job(dataset_root, tiny_clip_path, 'stock_job', 3))
    ddr_train.main(['-opt', yml, '--root', str(work)])
    experiment = work / 'experiments' / 'stock_job'
    assert (experiment / 'training_states' / '3.state').is_file()

    resumed = run_stock(['-m', 'basicsr.train', '-opt', yml, '--auto_resume', '--force_yml', 'train:total_iter=5',
                         'logger:use_tb_logger=true'], work)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'is inside an installed environment: experiments/, tb_logger/ and results/ go under the current ' \
           f'directory {work}' in resumed.stderr
    log = read_logs(experiment)
    assert resumed_at(log) == (0, 3) and logged_iterations(log)[-2:] == [4, 5] and 'l_ddr:' in log
    assert not list((work / 'experiments').glob('stock_job_archived_*'))
    assert not (Path(basicsr.__file__).parents[1] / 'experiments' / 'stock_job').exists()
    assert list((work / 'tb_logger' / 'stock_job').glob('events.out.tfevents.*'))
    assert not (Path(basicsr.__file__).parents[1] / 'tb_logger' / 'stock_job').exists()

    test_opt = make_options(dataset_root, tiny_clip_path, name='stock_test')
    test_opt['datasets'] = {'test': test_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(experiment / 'models' / 'net_g_latest.pth')}
    del test_opt['train']
    tested = run_stock(['-m', 'basicsr.test', '-opt', write_options(tmp_path / 'test.yml', test_opt)], work)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert '# psnr:' in read_logs(work / 'results' / 'stock_test')


@pytest.mark.slow
@needs_install
def test_stock_script_in_a_checkout_keeps_the_checkout_as_root(dataset_root, tiny_clip_path, tmp_path):
    checkout = tmp_path / 'BasicSR'
    (checkout / 'basicsr').mkdir(parents=True)
    (checkout / 'basicsr' / 'train.py').write_text(Path(basicsr.__file__).with_name('train.py').read_text())
    yml = write_options(tmp_path / 'job.yml', short_job(dataset_root, tiny_clip_path, 'checkout_job', 2))
    run = run_stock([str(checkout / 'basicsr' / 'train.py'), '-opt', yml, '--auto_resume'], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    looked_in = checkout / 'experiments' / 'checkout_job' / 'training_states'
    assert f'--auto_resume: no training state in {looked_in}; training starts at iteration 0' in run.stderr
    assert 'l_ddr:' in read_logs(checkout / 'experiments' / 'checkout_job')


def test_stock_train_pipeline_refuses_srmodel_with_a_ddr_block(dataset_root, tiny_clip_path, tmp_path, monkeypatch):
    import basicsr.train
    opt = short_job(dataset_root, tiny_clip_path, 'sr_with_ddr', 2)
    opt['model_type'] = 'SRModel'
    opt['train']['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', write_options(tmp_path / 'sr.yml', opt)])
    with pytest.raises(ValueError, match=re.escape(
            'model_type SRModel ignores the loss block(s) train.ddr_opt (it reads only pixel_opt, perceptual_opt); '
            'set model_type: RestorationModel to train with them')):
        basicsr.train.train_pipeline(str(tmp_path))
    assert not (tmp_path / 'experiments').exists()


# ---------------------------------------------------------------------------------------------------------------------
# BasicSR's own option files with the README's two-line change

TINY_NETWORKS = {
    'MSRResNet': {'num_feat': 8, 'num_block': 1},
    'EDSR': {'num_feat': 8, 'num_block': 1},
    'SwinIR': {'img_size': 16, 'window_size': 4, 'depths': [1], 'embed_dim': 12, 'num_heads': [2]},
}


def tiny_copy(original: dict, data: Path, clip_path: str) -> dict:
    """The README's change (model_type, ddr_opt), then CPU, tiny widths, synthetic data and two iterations."""
    opt = json.loads(json.dumps(original))  # plain dicts, as yaml.safe_dump writes them
    opt['model_type'] = 'RestorationModel'
    opt['train']['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 2.0, 'pretrained': clip_path}
    opt.update(num_gpu=0, name=f"tiny_{opt['network_g']['type']}")
    opt['network_g'].update(TINY_NETWORKS[opt['network_g']['type']])
    for phase, dataset in opt['datasets'].items():  # train, val, val_2, ...
        split = 'train' if phase == 'train' else 'val'
        dataset.update(dataroot_gt=str(data / split / 'gt'), dataroot_lq=str(data / split / 'lq'))
        dataset.pop('meta_info_file', None)
    opt['datasets']['train'].update(gt_size=32, num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['val']['metrics'].pop('niqe', None)  # NIQE needs images of a few hundred pixels, not 48-px tiles
    opt['val']['metrics']['ssim'] = {'type': 'calculate_ssim', 'crop_border': opt['scale'], 'test_y_channel': False}
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


@pytest.mark.parametrize('file_name', ['train_MSRResNet_x4.yml', 'train_EDSR_Mx2.yml', 'train_SwinIR_SRx2_scratch.yml'])
def test_basicsr_configs_train_with_ddr_after_the_two_line_change(file_name, tiny_clip_path, tmp_path):
    original = load_yaml(str(BASICSR_OPTIONS / file_name))
    assert original['model_type'] in ('SRModel', 'SwinIRModel') and 'ddr_opt' not in original['train']
    data = write_paired_dataset(tmp_path / 'data', scale=original['scale'])
    opt = tiny_copy(original, data, tiny_clip_path)
    ddr_train.main(['-opt', write_options(tmp_path / file_name, opt), '--root', str(tmp_path)])
    log = read_logs(tmp_path / 'experiments' / opt['name'])
    assert 'l_pixel:' in log and 'l_ddr:' in log
    assert '# psnr:' in log and '# ssim:' in log
    assert (tmp_path / 'experiments' / opt['name'] / 'models' / 'net_g_2.pth').is_file()
