"""The demo: deblurring with PSNR loss alone vs. PSNR + DDR (Eq. 8), trained by BasicSR on the CPU.

    python -m ddr_basicsr.tools.demo [--out results/demo] [--iters 400] [--pretrained openai|FILE]

1. builds a small deblurring set from scikit-image's sample photos (motion and Gaussian blur);
2. trains a small NAFNet twice with ``ddr-train``: PSNRLoss, then PSNRLoss + 2.0·DDRLoss;
3. validates both with BasicSR's PSNR/SSIM and writes ``report.md``, a picture grid and training curves.

CLIP: the real OpenAI ViT-B-32 weights when they can be had (cache, ``--pretrained FILE``, download);
otherwise the DDR term uses random weights, which banners and the report say plainly.
"""
import argparse
import os
import re
import shutil
import socket
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ddr_basicsr.utils.atomic_files import atomic_path, write_text_atomically

#: Colour sample photos shipped inside scikit-image (no download).
SAMPLE_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg', 'ihc.png', 'retina.jpg',
                 'rocket.jpg', 'motorcycle_left.png')
#: Photos are brought to this shorter side first; the right VAL_FRACTION of each is kept for validation.
PHOTO_SHORT_SIDE = 384
VAL_FRACTION = 0.3
RANDOM_WEIGHTS_BANNER = ('NOTE: the real CLIP weights could not be loaded ({reason}). The DDR term of this demo uses '
                         'RANDOM ViT-B-32 weights, so it shows the pipeline, not the paper\'s effect. Pass '
                         '--pretrained /path/to/ViT-B-32.pt (OpenAI) to use real weights.')


def sample_photo_folder() -> Path:
    import skimage
    return Path(skimage.__file__).parent / 'data'


def motion_blur_kernel(rng: np.random.Generator, length_range: Tuple[int, int] = (5, 9)) -> np.ndarray:
    """A normalised straight-line motion kernel of random length and angle."""
    length = int(rng.integers(length_range[0], length_range[1] + 1))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / kernel.sum()


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Motion blur (half of the images) or Gaussian blur of sigma 0.8-1.6 px, on a uint8 BGR image."""
    if rng.random() < 0.5:
        return cv2.filter2D(image, -1, motion_blur_kernel(rng), borderType=cv2.BORDER_REFLECT)
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.8, 1.6)), borderType=cv2.BORDER_REFLECT)


def textured_crop(photo: np.ndarray, crop: int, rng: np.random.Generator, tries: int = 10) -> np.ndarray:
    """The random ``crop``² window with the most detail (variance of the Laplacian) among ``tries``."""
    height, width = photo.shape[:2]
    candidates = []
    for _ in range(tries):
        top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
        window = photo[top:top + crop, left:left + crop]
        candidates.append((cv2.Laplacian(cv2.cvtColor(window, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var(), top, left))
    _, top, left = max(candidates)
    return photo[top:top + crop, left:left + crop]


def _write_pair(root: Path, split: str, name: str, sharp: np.ndarray, rng: np.random.Generator) -> None:
    for folder, image in (('sharp', sharp), ('blur', blur(sharp, rng))):
        _write_image(str(root / split / folder / f'{name}.png'), image)


def build_deblur_dataset(root: Path, tile: int = 128, val_crops_per_photo: int = 1, seed: int = 0,
                         photo_folder: Optional[Path] = None) -> Dict[str, int]:
    """Write blurred/sharp pairs ``root/{train,val}/{sharp,blur}/*.png``; returns the pair counts.

    Each photo is resized to a shorter side of PHOTO_SHORT_SIDE; its left part is cut into ``tile``² training
    tiles and its right VAL_FRACTION gives ``val_crops_per_photo`` textured ``tile``² validation crops, so both
    sets see every photo but never the same pixels. Every pair has its own blur kernel. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    photo_folder = photo_folder or sample_photo_folder()
    for split in ('train', 'val'):
        for folder in ('sharp', 'blur'):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
    counts = defaultdict(int)
    for file_name in SAMPLE_PHOTOS:
        photo = cv2.imread(str(photo_folder / file_name), cv2.IMREAD_COLOR)
        if photo is None:
            raise FileNotFoundError(f'sample photo {photo_folder / file_name} is missing; reinstall scikit-image')
        factor = PHOTO_SHORT_SIDE / min(photo.shape[:2])
        photo = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        split_column = min(int(photo.shape[1] * (1 - VAL_FRACTION)), photo.shape[1] - tile)
        stem = Path(file_name).stem
        train_part, val_part = photo[:, :split_column], photo[:, split_column:]
        for top in range(0, train_part.shape[0] - tile + 1, tile):
            for left in range(0, train_part.shape[1] - tile + 1, tile):
                tile_image = train_part[top:top + tile, left:left + tile]
                _write_pair(root, 'train', f'{stem}_{top:04d}_{left:04d}', tile_image, rng)
                counts['train'] += 1
        for index in range(val_crops_per_photo):
            _write_pair(root, 'val', f'{stem}_{index:02d}', textured_crop(val_part, tile, rng), rng)
            counts['val'] += 1
    return dict(counts)


def validation_interval(iters: int) -> int:
    """Validate four times per run, or once at the end of runs shorter than four iterations."""
    return iters // 4 if iters >= 4 else iters


def demo_options(name: str, data_root: Path, iters: int, clip_weights: Optional[str], with_ddr: bool,
                 batch_size: int = 4, patch: int = 64, width: int = 16) -> dict:
    """BasicSR options of one demo run: a small NAFNet, AdamW, cosine schedule, PSNR (+ DDR) loss."""
    train_opt = {
        'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
        'scheduler': {'type': 'TrueCosineAnnealingLR', 'T_max': iters, 'eta_min': 1e-6},
        'total_iter': iters, 'warmup_iter': -1,
        'pixel_opt': {'type': 'PSNRLoss', 'loss_weight': 1.0},
    }
    if with_ddr:
        train_opt['ddr_opt'] = {'type': 'DDRLoss', 'loss_weight': 2.0, 'degradations': ['color', 'content', 'blur'],
                                'model': 'ViT-B-32', 'pretrained': clip_weights, 'distance': 'cosine'}
    dataset = {'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'}
    val_every = validation_interval(iters)
    return {
        'name': name, 'model_type': 'RestorationModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(dataset, name='demo-train', dataroot_gt=str(data_root / 'train' / 'sharp'),
                          dataroot_lq=str(data_root / 'train' / 'blur'), gt_size=patch, use_hflip=True,
                          use_rot=True, use_shuffle=True, num_worker_per_gpu=0, batch_size_per_gpu=batch_size,
                          dataset_enlarge_ratio=1, prefetch_mode=None),
            'val': dict(dataset, name='demo-val', dataroot_gt=str(data_root / 'val' / 'sharp'),
                        dataroot_lq=str(data_root / 'val' / 'blur')),
        },
        'network_g': {'type': 'NAFNet', 'width': width, 'enc_blk_nums': [1, 1, 1], 'middle_blk_num': 1,
                      'dec_blk_nums': [1, 1, 1]},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': train_opt,
        'val': {'val_freq': val_every, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': max(1, iters // 20), 'save_checkpoint_freq': iters, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(('huggingface.co', 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def use_hub_cache_only() -> None:
    """Hugging Face hub offline mode: look in the cache only, instead of minutes of connection retries."""
    import huggingface_hub.constants
    os.environ['HF_HUB_OFFLINE'] = '1'
    huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at call time; the env var alone is read at import


def resolve_clip_weights(requested: str) -> Tuple[Optional[str], Optional[str]]:
    """(weights for DDRLoss, None) when ``requested`` loads, else (None, reason) for random weights."""
    from ddr_basicsr.core.clip_loading import ClipWeightsError, load_clip
    try:
        load_clip('ViT-B-32', requested)
        return requested, None
    except ClipWeightsError as error:
        return None, str(error).split('. Cause:')[0]


LOG_LOSS = re.compile(r'iter:\s*([\d,]+).*?\]\s*(.*)$')
LOG_TERM = re.compile(r'(l_\w+): ([-+0-9.eE]+)')
LOG_METRIC = re.compile(r'# (psnr|ssim): ([-+0-9.eE]+)')


def parse_training_log(log_file: Path) -> Tuple[Dict[str, List[Tuple[int, float]]], Dict[str, List[float]]]:
    """Loss terms per logged iteration and validation metrics in order, from a BasicSR train log."""
    losses, metrics = defaultdict(list), defaultdict(list)
    for line in log_file.read_text(encoding='utf-8').splitlines():
        match = LOG_LOSS.search(line)
        if match:
            iteration = int(match.group(1).replace(',', ''))
            for term, value in LOG_TERM.findall(match.group(2)):
                losses[term].append((iteration, float(value)))
            continue
        match = LOG_METRIC.search(line)
        if match:
            metrics[match.group(1)].append(float(match.group(2)))
    return dict(losses), dict(metrics)


def _latest_log(experiment: Path) -> Path:
    logs = sorted(experiment.glob('train_*.log'))
    if not logs:
        raise FileNotFoundError(f'no training log in {experiment}')
    return logs[-1]


def plot_curves(runs: Dict[str, Path], target: Path, val_every: int, iters: int) -> None:
    """One PNG: the PSNR-loss term, the DDR term and the validation PSNR of each run against iterations."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = {'l_pixel': axes[0], 'l_ddr': axes[1]}
    for label, experiment in runs.items():
        losses, metrics = parse_training_log(_latest_log(experiment))
        for term, axis in panels.items():
            if term in losses:
                axis.plot(*zip(*losses[term]), label=label)
        psnr = metrics.get('psnr', [])[:iters // val_every]  # BasicSR repeats the last validation at the end
        axes[2].plot([val_every * (i + 1) for i in range(len(psnr))], psnr, marker='o', label=label)
    axes[0].set(title='PSNR loss term (l_pixel)', xlabel='iteration', ylabel='loss')
    axes[1].set(title='DDR term (l_ddr = -2.0 DDR)', xlabel='iteration', ylabel='loss')
    axes[2].set(title='validation PSNR', xlabel='iteration', ylabel='dB')
    for axis in axes:
        axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(str(target)) as temporary:
        figure.savefig(temporary, dpi=100, format='png')
    plt.close(figure)


def _write_image(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f'could not write {path}')


def restore_validation_set(experiments: Dict[str, Path], data_root: Path, options: Dict[str, dict]):
    """Outputs of each run's final network on the val set, PSNR/SSIM (BasicSR) and DDR of each output."""
    import torch
    from basicsr.archs import build_network
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import img2tensor, tensor2img

    names = sorted(p.stem for p in (data_root / 'val' / 'sharp').glob('*.png'))
    blurred = {n: cv2.imread(str(data_root / 'val' / 'blur' / f'{n}.png')) for n in names}
    sharp = {n: cv2.imread(str(data_root / 'val' / 'sharp' / f'{n}.png')) for n in names}
    outputs, table = {}, {}
    for label, experiment in experiments.items():
        network = build_network(options[label]['network_g'])
        checkpoint = torch.load(experiment / 'models' / 'net_g_latest.pth', map_location='cpu', weights_only=True)
        network.load_state_dict(checkpoint['params'], strict=True)
        network.eval()
        outputs[label], rows = {}, []
        for name in names:
            lq = img2tensor(blurred[name].astype(np.float32) / 255.0, bgr2rgb=True, float32=True)[None]
            with torch.no_grad():
                outputs[label][name] = tensor2img(network(lq))
            rows.append((calculate_psnr(outputs[label][name], sharp[name], crop_border=0),
                         calculate_ssim(outputs[label][name], sharp[name], crop_border=0)))
        table[label] = tuple(float(np.mean(column)) for column in zip(*rows))
    baseline = [(calculate_psnr(blurred[n], sharp[n], 0), calculate_ssim(blurred[n], sharp[n], 0)) for n in names]
    table['blurred input'] = tuple(float(np.mean(column)) for column in zip(*baseline))
    return names, blurred, sharp, outputs, table


def _labelled(image: np.ndarray, text: str) -> np.ndarray:
    canvas = cv2.copyMakeBorder(image, 22, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(canvas, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def write_grid(names: Sequence[str], blurred, sharp, outputs, labels: Sequence[str], target: Path) -> None:
    """Rows: val images; columns: blurred / each run / sharp."""
    rows = []
    for name in names:
        tiles = [_labelled(blurred[name], 'blurred')]
        tiles += [_labelled(outputs[label][name], label) for label in labels]
        tiles.append(_labelled(sharp[name], 'sharp'))
        rows.append(cv2.hconcat(tiles))
    with atomic_path(str(target)) as temporary:
        _write_image(temporary, cv2.vconcat(rows))


def write_report(target: Path, table: Dict[str, Tuple[float, float]], counts: Dict[str, int], iters: int,
                 clip_note: str, seconds: Dict[str, float]) -> None:
    lines = ['# ddr-basicsr demo: deblurring with PSNR loss vs. PSNR + DDR (Eq. 8)', '', clip_note, '',
             f"Data: {counts['train']} training tiles and {counts['val']} validation crops (128²) from disjoint parts "
             "of scikit-image's sample photos, each blurred with its own random motion or Gaussian kernel. Network: "
             f'NAFNet (width 16, 3 levels), AdamW, {iters} iterations of batch 4 on 64² patches, on the CPU.', '',
             '| method | PSNR (dB) | SSIM | training time (s) |', '|---|---|---|---|']
    for label, (psnr, ssim) in table.items():
        lines.append(f'| {label} | {psnr:.2f} | {ssim:.4f} | {seconds.get(label, 0):.0f} |' if label in seconds
                     else f'| {label} | {psnr:.2f} | {ssim:.4f} | – |')
    lines += ['', 'PSNR/SSIM: BasicSR `calculate_psnr` / `calculate_ssim` on uint8 RGB, no border crop, '
              'averaged over the validation images.', '',
              '![blurred / PSNR / PSNR + DDR / sharp](grid.png)', '', '![training curves](curves.png)', '',
              'A demo this short shows the pipeline working end to end; the paper\'s gains need its full '
              'settings (options/, 200k iterations on GoPro).', '']
    write_text_atomically(str(target), '\n'.join(lines))


def banner(text: str) -> None:
    line = '=' * 100
    print(f'\n{line}\n{text}\n{line}\n', flush=True)


def run_demo(out: Path, iters: int, clip_weights: str, val_crops_per_photo: int = 1) -> Path:
    """The whole demo; returns the report's path."""
    if clip_weights == 'openai' and not _hub_reachable():
        use_hub_cache_only()
    import yaml

    from ddr_basicsr.host.pipelines import train_main

    out.mkdir(parents=True, exist_ok=True)
    weights, reason = resolve_clip_weights(clip_weights)
    clip_note = (f'CLIP for the DDR term: ViT-B-32 weights `{weights}`.' if weights else
                 RANDOM_WEIGHTS_BANNER.format(reason=reason))
    if weights is None:
        banner(clip_note)
    data_root = out / 'data'
    shutil.rmtree(data_root, ignore_errors=True)  # a re-run rebuilds the same data
    counts = build_deblur_dataset(data_root, val_crops_per_photo=val_crops_per_photo)
    print(f"[demo] dataset: {counts['train']} train / {counts['val']} val pairs in {data_root}", flush=True)
    runs = {'PSNR': False, 'PSNR + DDR': True}
    options, experiments, seconds = {}, {}, {}
    for label, with_ddr in runs.items():
        name = 'demo_psnr_ddr' if with_ddr else 'demo_psnr'
        options[label] = demo_options(name, data_root, iters, weights, with_ddr)
        option_file = out / f'{name}.yml'
        option_file.write_text(yaml.safe_dump(options[label], sort_keys=False), encoding='utf-8')
        experiments[label] = out / 'experiments' / name
        shutil.rmtree(experiments[label], ignore_errors=True)  # a re-run replaces the demo's previous run
        print(f'[demo] training {label} ({iters} iterations): ddr-train -opt {option_file} --root {out}', flush=True)
        start = time.time()
        train_main(['-opt', str(option_file), '--root', str(out)])
        seconds[label] = time.time() - start
    names, blurred, sharp, outputs, table = restore_validation_set(experiments, data_root, options)
    write_grid(names, blurred, sharp, outputs, list(runs), out / 'grid.png')
    plot_curves(experiments, out / 'curves.png', validation_interval(iters), iters)
    report = out / 'report.md'
    write_report(report, table, counts, iters, clip_note, seconds)
    print(report.read_text(encoding='utf-8'))
    if weights is None:
        banner(clip_note)
    return report


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='results/demo', help='output folder (default: results/demo)')
    parser.add_argument('--iters', type=int, default=400, help='training iterations of each run (default: 400)')
    parser.add_argument('--pretrained', '--clip-weights', dest='pretrained',
                        default=os.environ.get('DDR_CLIP_WEIGHTS', 'openai'),
                        help="CLIP ViT-B-32 weights: 'openai' (cache or download) or a local file "
                             '(default: $DDR_CLIP_WEIGHTS or openai; --clip-weights: old spelling of --pretrained)')
    parser.add_argument('--val-crops-per-photo', type=int, default=1,
                        help='validation crops taken from each sample photo (default 1)')
    args = parser.parse_args(argv)
    run_demo(Path(args.out).resolve(), args.iters, args.pretrained, args.val_crops_per_photo)


if __name__ == '__main__':
    sys.exit(main())
