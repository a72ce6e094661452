"""The demo: its dataset builder and a shortened end-to-end run with the tiny CLIP."""
import cv2
import numpy as np
import pytest

from ddr_basicsr.tools import demo


def test_build_deblur_dataset_is_paired_disjoint_and_deterministic(tmp_path):
    counts = demo.build_deblur_dataset(tmp_path / 'a', tile=96, val_crops_per_photo=2)
    assert counts == {'train': 100, 'val': 16}  # 4 rows x (268 or 308 or ~400 px) // 96 tiles per photo
    demo.build_deblur_dataset(tmp_path / 'b', tile=96, val_crops_per_photo=2)
    for split in ('train', 'val'):
        sharp = sorted(p.name for p in (tmp_path / 'a' / split / 'sharp').glob('*.png'))
        assert sharp == sorted(p.name for p in (tmp_path / 'a' / split / 'blur').glob('*.png'))
        assert len(sharp) == counts[split]
        differences = []
        for name in sharp:
            gt = cv2.imread(str(tmp_path / 'a' / split / 'sharp' / name))
            lq = cv2.imread(str(tmp_path / 'a' / split / 'blur' / name))
            assert gt.shape == lq.shape == (96, 96, 3)
            differences.append(np.abs(gt.astype(int) - lq).mean())
            assert np.array_equal(lq, cv2.imread(str(tmp_path / 'b' / split / 'blur' / name)))
        assert np.median(differences) > 1.0  # blurred
    train_pixels = {cv2.imread(str(p)).tobytes() for p in (tmp_path / 'a' / 'train' / 'sharp').glob('*.png')}
    assert all(cv2.imread(str(p)).tobytes() not in train_pixels for p in (tmp_path / 'a' / 'val' / 'sharp').glob('*'))


def test_motion_blur_kernel_is_normalised():
    kernel = demo.motion_blur_kernel(np.random.default_rng(0))
    assert kernel.shape[0] == kernel.shape[1] >= 7
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and (kernel >= 0).all()


def test_missing_weights_fall_back_to_random_with_banner(tmp_path):
    weights, reason = demo.resolve_clip_weights(str(tmp_path / 'ViT-B-32.pt'))
    assert weights is None and 'not found' in reason
    note = demo.RANDOM_WEIGHTS_BANNER.format(reason=reason)
    demo.write_report(tmp_path / 'report.md', {'PSNR': (20.0, 0.5)}, {'train': 1, 'val': 1}, 2, note, {'PSNR': 1.0})
    report = (tmp_path / 'report.md').read_text()
    assert 'RANDOM ViT-B-32 weights' in report and '| PSNR | 20.00 | 0.5000 | 1 |' in report


@pytest.mark.slow
def test_short_demo_run_writes_report_grid_and_curves(tmp_path, tiny_clip_path):
    report = demo.run_demo(tmp_path, iters=2, clip_weights=tiny_clip_path)
    text = report.read_text()
    for row in ('| PSNR |', '| PSNR + DDR |', '| blurred input |'):
        assert row in text
    assert 'RANDOM' not in text and tiny_clip_path in text
    grid = cv2.imread(str(tmp_path / 'grid.png'))
    assert grid.shape[0] == 8 * (128 + 24) and grid.shape[1] == 4 * (128 + 4)  # 8 val crops, 4 columns
    assert cv2.imread(str(tmp_path / 'curves.png')) is not None
    assert (tmp_path / 'experiments' / 'demo_psnr_ddr' / 'models' / 'net_g_latest.pth').is_file()
    assert 'ddr_opt' in (tmp_path / 'demo_psnr_ddr.yml').read_text()
    assert not list(tmp_path.glob('.*partial-*'))
