"""Preemption-proof training (CPU, in-process): exact resume, SIGTERM, atomic checkpoints, damaged states,
data pre-flight, non-finite losses, schedules changed on resume, and the fault-injection harness."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ddr_basicsr.data.synthetic import write_synthetic_pairs
from ddr_basicsr.host import training_loop
from ddr_basicsr.host.pipelines import train_main
from ddr_basicsr.host.preflight import DataCheckError, check_data
from ddr_basicsr.losses.ddr_loss import DDRLoss
from ddr_basicsr.models.restoration_model import NonFiniteLossError, RestorationModel
from ddr_basicsr.models.training_guarantees import TrainingGuaranteesMixin
from ddr_basicsr.tools.fault_injection import final_weights_equal, run_harness, tiny_job_options
from ddr_basicsr.training import checkpoints, preemption
from ddr_basicsr.training.checkpoints import CheckpointWriteError, NonFiniteWeightsError
from ddr_basicsr.training.resume import TRAINING, ResumeMismatchError, SeededSamples, UnreadableSampleError
from tiny_training import logged_iterations, read_logs, subprocess_env


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """Training installs SIGTERM/SIGINT handlers in this process; put pytest's back afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in preemption.STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    TRAINING.stop_signal = None


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    return write_synthetic_pairs(tmp_path_factory.mktemp('pairs'), {'train': 5, 'val': 1}, size=32)


def job(data_root: Path, name: str, total_iter: int = 8, clip_path: str = None) -> dict:
    opt = tiny_job_options(data_root, name, total_iter)
    if clip_path:
        opt['train']['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 0.5, 'pretrained': clip_path}
    return opt


def train(root: Path, opt: dict, *args: str) -> int:
    """Run ddr-train in this process; its exit status (0 when it returns)."""
    path = root / f"{opt['name']}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    try:
        train_main(['--root', str(root), '-opt', str(path), *args])
    except SystemExit as stop:
        return stop.code
    return 0


def latest_weights(root: Path, name: str) -> Path:
    return root / 'experiments' / name / 'models' / 'net_g_latest.pth'


def sigterm_after(iterations, monkeypatch) -> None:
    """Send this process a real SIGTERM once each of ``iterations`` has finished (at most once per run)."""
    pending = sorted(iterations)

    stock = TrainingGuaranteesMixin.update_learning_rate

    def hook(self, current_iter, warmup_iter=-1):
        if pending and current_iter - 1 == pending[0] and TRAINING.stop_signal is None:
            pending.pop(0)
            os.kill(os.getpid(), signal.SIGTERM)
        stock(self, current_iter, warmup_iter)
    monkeypatch.setattr(TrainingGuaranteesMixin, 'update_learning_rate', hook)


# ---------------------------------------------------------------------------------------------------------------------
# exact resume and SIGTERM

def test_resume_after_sigterm_at_three_points_equals_the_uninterrupted_run(data_root, tiny_clip_path, tmp_path,
                                                                           monkeypatch):
    """5 batches per epoch, progressive stages [1-4], [5-8]: stopped after 3 (mid-epoch), 4 (the last iteration of
    the first progressive stage) and 5 (an epoch boundary); augmentation, enlarge ratio 2, EMA and DDRLoss on."""
    assert train(tmp_path, job(data_root, 'whole', clip_path=tiny_clip_path)) == 0
    sigterm_after([3, 4, 5], monkeypatch)
    opt = job(data_root, 'cut', clip_path=tiny_clip_path)
    states = tmp_path / 'experiments' / 'cut' / 'training_states'
    for run, iteration in enumerate((3, 4, 5)):
        assert train(tmp_path, opt, *(['--auto_resume'] if run else [])) == 75
        state = torch.load(states / f'{iteration}.state', weights_only=True)
        assert (state['iter'], state['epoch']) == (iteration, iteration // 5)  # the epoch in progress after it
    assert train(tmp_path, opt, '--auto_resume') == 0
    assert final_weights_equal(latest_weights(tmp_path, 'whole'), latest_weights(tmp_path, 'cut'))


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_with_loader_workers_saves_and_exits_75(data_root, tmp_path):
    """SLURM's pattern: the signal reaches every process of the job step, data-loader workers included."""
    opt = job(data_root, 'group', total_iter=100000)
    opt['datasets']['train']['num_worker_per_gpu'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=100000)
    opt['val']['val_freq'] = 100000
    path = tmp_path / 'group.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    process = subprocess.Popen([sys.executable, '-m', 'ddr_basicsr.train', '--root', str(tmp_path), '-opt', str(path)],
                               env=subprocess_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    experiment = tmp_path / 'experiments' / 'group'
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if experiment.is_dir() and len(logged_iterations(read_logs(experiment))) >= 3:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == preemption.PREEMPTED_EXIT_STATUS, err[-3000:]
    states = checkpoints.training_states(str(experiment / 'training_states'))
    assert len(states) == 1 and checkpoints.unreadable_reason(states[0][1]) is None
    assert checkpoints.unreadable_reason(str(experiment / 'models' / f'net_g_{states[0][0]}.pth')) is None


def test_a_second_signal_stops_at_once(tmp_path):
    pid = os.fork()
    if pid == 0:
        status = 3
        try:
            preemption.install_stop_handlers()
            os.kill(os.getpid(), signal.SIGTERM)  # noted: the handler only records it
            status = 4 if TRAINING.stop_signal == 'SIGTERM' else 5
            os.kill(os.getpid(), signal.SIGTERM)  # the second one ends the process by the signal
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGTERM


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints

def test_checkpoint_write_failure_is_an_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / 'net_g_4.pth'
    checkpoints.write_checkpoint({'params': {'w': torch.ones(3)}}, str(target))

    def disk_full(stream, data):
        stream.write(data[:10])
        raise OSError(28, 'No space left on device')
    with pytest.raises(CheckpointWriteError, match=r'net_g_4\.pth \(No space left on device\); the previous file'):
        checkpoints.write_checkpoint({'params': {'w': torch.zeros(3)}}, str(target), write=disk_full)
    assert torch.equal(torch.load(target, weights_only=True)['params']['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_4.pth']


def test_non_finite_weights_are_never_saved():
    with pytest.raises(NonFiniteWeightsError, match=r'net_g_7\.pth \[params\]: body\.weight holds NaN'):
        checkpoints.check_finite_state_dict({'body.weight': torch.tensor([1.0, float('nan')])}, 'net_g_7.pth [params]')


def _write_state(folder: Path, models: Path, iteration: int) -> None:
    checkpoints.write_checkpoint({'iter': iteration, 'epoch': 0, 'optimizers': [], 'schedulers': []},
                                 str(folder / f'{iteration}.state'))
    checkpoints.write_checkpoint({'params': {}}, str(models / f'net_g_{iteration}.pth'))


def test_auto_resume_skips_damaged_states_names_them_and_removes_unfinished_writes(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for iteration in (2, 4, 6, 8):
        _write_state(states, models, iteration)
    data = (states / '8.state').read_bytes()
    (states / '8.state').write_bytes(data[:len(data) // 2])  # copied half
    (models / 'net_g_6.pth').write_bytes(b'')  # the network of state 6 is empty
    (models / '.net_g_10.partial-x1.pth').write_bytes(b'PK')  # a write killed half-way
    opt = {'auto_resume': True, 'name': 'job', 'network_g': {}, 'num_gpu': 0,
           'path': {'training_states': str(states), 'models': str(models), 'experiments_root': str(tmp_path)}}
    messages = []
    original_tell, training_loop.tell = training_loop.tell, messages.append
    try:
        state = training_loop.load_resume_state(opt)
    finally:
        training_loop.tell = original_tell
    assert state['iter'] == 4 and opt['path']['resume_state'].endswith('4.state')
    text = '\n'.join(messages)
    assert f'skipping the training state {states / "8.state"}: RuntimeError' in text
    assert f'skipping the training state {states / "6.state"}: its network {models / "net_g_6.pth"} is empty' in text
    assert '.net_g_10.partial-x1.pth, an unfinished checkpoint' in text
    assert not (models / '.net_g_10.partial-x1.pth').exists()


def test_auto_resume_refuses_to_start_over_when_no_state_is_readable(tmp_path):
    states = tmp_path / 'training_states'
    states.mkdir()
    (states / '4.state').write_bytes(b'truncated')
    opt = {'auto_resume': True, 'name': 'job', 'network_g': {}, 'num_gpu': 0,
           'path': {'training_states': str(states), 'models': str(tmp_path), 'experiments_root': str(tmp_path)}}
    with pytest.raises(RuntimeError, match='no training state in .* can be read'):
        training_loop.load_resume_state(opt)


# ---------------------------------------------------------------------------------------------------------------------
# data faults

def test_preflight_names_every_unreadable_image_and_mismatched_pair(tmp_path):
    root = write_synthetic_pairs(tmp_path, {'train': 4}, size=32)
    (root / 'train' / 'gt' / '001.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    (root / 'train' / 'lq' / '002.png').write_bytes(b'')
    import cv2
    cv2.imwrite(str(root / 'train' / 'lq' / '003.png'), cv2.imread(str(root / 'train' / 'lq' / '000.png'))[:16])
    opt = {'scale': 1, 'datasets': {'train': tiny_job_options(root, 'x', 4)['datasets']['train']}}
    with pytest.raises(DataCheckError) as error:
        check_data(opt, workers=2)
    message = str(error.value)
    assert 'found 3 problem(s)' in message
    assert f"{root / 'train' / 'gt' / '001.png'}: unreadable" in message
    assert f"{root / 'train' / 'lq' / '002.png'}: empty file (0 bytes)" in message
    assert f"{root / 'train' / 'lq' / '003.png'} (32x16) does not match {root / 'train' / 'gt' / '003.png'}" in message
    assert '--skip-data-check' in message


def test_preflight_stops_training_before_any_folder_is_made(tmp_path):
    broken = write_synthetic_pairs(tmp_path / 'broken', {'train': 2, 'val': 1}, size=32)
    (broken / 'val' / 'lq' / '000.png').write_bytes(b'')
    with pytest.raises(DataCheckError, match='000.png: empty file'):
        train(tmp_path, tiny_job_options(broken, 'bad_data', 4))
    assert not (tmp_path / 'experiments').exists()


def test_a_sample_that_fails_to_decode_is_named_or_skipped(data_root):
    class Broken(torch.utils.data.Dataset):
        paths = [{'lq_path': 'a_lq.png', 'gt_path': 'a_gt.png'}, {'lq_path': 'b_lq.png', 'gt_path': 'b_gt.png'}]

        def __len__(self):
            return 2

        def __getitem__(self, index):
            if index == 0:
                raise AttributeError("'NoneType' object has no attribute 'astype'")
            return {'index': index}
    with pytest.raises(UnreadableSampleError, match=r'sample 0 \(lq_path=a_lq.png, gt_path=a_gt.png\).*skip_unread'):
        SeededSamples(Broken())[(0, 1)]
    assert SeededSamples(Broken(), skip_unreadable=True)[(0, 1)] == {'index': 1}


# ---------------------------------------------------------------------------------------------------------------------
# non-finite losses

def test_nan_in_the_ddr_term_stops_with_its_name_and_leaves_no_nan_checkpoint(data_root, tiny_clip_path, tmp_path,
                                                                             monkeypatch):
    calls = []

    def ddr_forward(self, pred, *args, **kwargs):
        calls.append(1)
        return pred.mean() * (float('nan') if len(calls) == 3 else 0.0)
    monkeypatch.setattr(DDRLoss, 'forward', ddr_forward)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3: the loss term l_ddr is not finite \(l_pixel = '):
        train(tmp_path, job(data_root, 'nan', clip_path=tiny_clip_path))
    models = tmp_path / 'experiments' / 'nan' / 'models'
    assert sorted(p.name for p in models.iterdir()) == ['net_g_2.pth']
    calls.clear()
    opt = job(data_root, 'nan_skipped', total_iter=4, clip_path=tiny_clip_path)
    opt['train']['max_nonfinite_skips'] = 1
    opt['logger']['print_freq'] = 1
    assert train(tmp_path, opt) == 0
    log = read_logs(tmp_path / 'experiments' / 'nan_skipped')
    assert 'iter 3: the loss term l_ddr is not finite' in log and 'step skipped (1 of at most' in log
    assert 'nonfinite_skips: 1.0000e+00' in log


# ---------------------------------------------------------------------------------------------------------------------
# options changed on resume

def test_resume_with_a_longer_cosine_restart_schedule_runs_to_the_new_end(data_root, tmp_path):
    opt = job(data_root, 'extend', total_iter=4)
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [4], 'restart_weights': [1],
                                 'eta_min': 1e-7}
    assert train(tmp_path, opt) == 0
    opt['train']['total_iter'] = 6
    opt['train']['scheduler']['periods'] = [6]
    assert train(tmp_path, opt, '--auto_resume') == 0
    log = read_logs(tmp_path / 'experiments' / 'extend')
    assert 'resume: CosineAnnealingRestartLR.periods [4] -> [6] (from the options)' in log
    assert (tmp_path / 'experiments' / 'extend' / 'training_states' / '6.state').is_file()
    opt['datasets']['train']['dataset_enlarge_ratio'] = 1
    with pytest.raises(ResumeMismatchError, match=r'batches_per_epoch 5 -> 2, samples_per_rank 10 -> 5'):
        train(tmp_path, opt, '--auto_resume')


# ---------------------------------------------------------------------------------------------------------------------
# the fault-injection harness (the script runs it with K >= 30)

def test_fault_injection_harness_with_five_faults(tmp_path):
    report = run_harness(tmp_path, kills=5, total_iter=12, seed=3, progress=lambda message: None)
    assert report.events == [] or all('not reached' in event for event in report.events)
    assert report.kills + report.sigterms >= 4
    assert report.recovered and report.bitwise_equal and report.truncated_files == []


# ---------------------------------------------------------------------------------------------------------------------
# a run that cannot start leaves the previous one alone

@pytest.mark.parametrize('breaker, message', [
    (lambda opt: opt['train'].update(ddr_opt={'type': 'DDRLoss', 'pretrained': '/missing/ViT-B-32.pt'}),
     r"train.ddr_opt \(DDRLoss\) cannot be built: CLIP weights '/missing/ViT-B-32.pt'"),
    (lambda opt: opt['val']['metrics'].update(ddr={'type': 'calculate_ddr', 'pretrained': '/missing/clip.pt'}),
     r"val.metrics.ddr: CLIP weights '/missing/clip.pt'"),
    (lambda opt: opt['train'].update(lpips_opt={'type': 'LPIPSLoss', 'weights_path': '/missing/vgg16.pth'}),
     r"train.lpips_opt \(LPIPSLoss\) cannot be built: weights_path '/missing/vgg16.pth' does not exist"),
    (lambda opt: opt['train']['pixel_opt'].update(reduction='average'),
     r'train.pixel_opt \(PSNRLoss\) cannot be built: .*average'),
])
def test_a_run_that_cannot_start_does_not_archive_the_previous_one(breaker, message, data_root, tmp_path):
    previous = tmp_path / 'experiments' / 'again' / 'models'
    previous.mkdir(parents=True)
    (previous / 'net_g_latest.pth').write_bytes(b'weights of the previous run')
    opt = job(data_root, 'again', total_iter=2)
    breaker(opt)
    with pytest.raises(Exception, match=message):
        train(tmp_path, opt)
    assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == ['again']
    assert (previous / 'net_g_latest.pth').read_bytes() == b'weights of the previous run'


def test_preflight_counts_lmdb_keys_against_meta_info(tmp_path):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    root = write_synthetic_pairs(tmp_path, {'train': 2}, size=32)
    for sub in ('gt', 'lq'):
        make_lmdb_from_imgs(str(root / 'train' / sub), str(tmp_path / f'{sub}.lmdb'), ['000.png', '001.png'],
                            ['000', '001'], multiprocessing_read=False)
    with open(tmp_path / 'gt.lmdb' / 'meta_info.txt', 'a') as meta:
        meta.write('002.png (32,32,3) 1\n')
    train_opt = {**tiny_job_options(root, 'x', 4)['datasets']['train'], 'io_backend': {'type': 'lmdb'},
                 'dataroot_gt': str(tmp_path / 'gt.lmdb'), 'dataroot_lq': str(tmp_path / 'lq.lmdb')}
    with pytest.raises(DataCheckError, match=r'gt.lmdb: 2 images stored but meta_info.txt lists 3'):
        check_data({'scale': 1, 'datasets': {'train': train_opt}})


def test_a_network_file_that_does_not_fit_network_g_names_the_file(tmp_path):
    from basicsr.archs import build_network
    small = build_network({'type': 'NAFNet', 'width': 4, 'enc_blk_nums': [1], 'middle_blk_num': 1,
                           'dec_blk_nums': [1]})
    wide = build_network({'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1,
                          'dec_blk_nums': [1]})
    path = tmp_path / 'net_g_4.pth'
    torch.save({'params': small.state_dict()}, path)
    model = RestorationModel.__new__(RestorationModel)
    model.opt = {'dist': False, 'num_gpu': 0}
    with pytest.raises(ValueError, match=r"net_g_4.pth' does not fit the network built from the options \(NAFNet\): "
                                         r'.*network_g must stay as it was'):
        model.load_network(wide, str(path))


def test_each_loss_block_is_built_once_per_run(data_root, tiny_clip_path, tmp_path, monkeypatch):
    """The pre-flight builds the loss blocks to resolve their weights; the model takes those (CLIP loads once)."""
    built = []
    original_init = DDRLoss.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original_init(self, *args, **kwargs)
    monkeypatch.setattr(DDRLoss, '__init__', counting_init)
    assert train(tmp_path, job(data_root, 'once', total_iter=2, clip_path=tiny_clip_path)) == 0
    assert len(built) == 1
