"""Dataset preparation (``ddr_basicsr.data.layouts`` and ``ddr_basicsr.data.preparation``, and the three
``scripts/prepare_*.py`` run as a user would) on miniature copies of each dataset's real layout: outputs are
paired, cropped and counted correctly, re-runs skip, failures leave nothing half-written, and the result feeds
BasicSR's PairedImageDataset at the paths the option files use."""
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.data.paired_image_dataset import PairedImageDataset

from ddr_basicsr.data.layouts import gopro_plans, realblur_plans, realsr_city100_plans
from ddr_basicsr.data.preparation import CropSpec, SplitPlan, partial_path, run_plans
from ddr_basicsr.host.options import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 64)  # (h, w) of the miniature images
SMALL_CROP = ['--crop-size', '32', '--step', '16']  # 2 x 3 = 6 sub-images per 48 x 64 image
SMALL = CropSpec(32, 16)  # the same for package calls


def seed_of(*parts: object) -> int:
    """A deterministic seed per name (Python's hash() of strings changes between runs)."""
    return zlib.crc32(repr(parts).encode())


def write_image(path: Path, seed: int, size: Tuple[int, int] = SIZE) -> np.ndarray:
    """A random BGR image; returns it so tests can compare outputs with it."""
    img = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return img


def write_pair(gt_path: Path, lq_path: Path, seed: int, lq_size: Tuple[int, int] = SIZE) -> np.ndarray:
    """GT random, LQ its negative (resized to ``lq_size``), so pairing can be checked pixel by pixel."""
    gt = write_image(gt_path, seed)
    lq = 255 - gt if lq_size == SIZE else cv2.resize(255 - gt, lq_size[::-1], interpolation=cv2.INTER_AREA)
    lq_path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(lq_path), lq)
    return gt


def read_lmdb(path: Path) -> Dict[str, np.ndarray]:
    meta = [line.split()[0][:-len('.png')] for line in (path / 'meta_info.txt').read_text().splitlines()]
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        images = {key: cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_COLOR) for key in meta}
        assert txn.stat()['entries'] == len(meta)
    env.close()
    return images


def check_pairs_are_negatives(gt: Dict[str, np.ndarray], lq: Dict[str, np.ndarray]) -> None:
    assert gt.keys() == lq.keys()
    for key in gt:
        assert np.array_equal(lq[key], 255 - gt[key]), key


def dataset_item(option_file: str, phase: str, root: Path, gt_size: int = 16) -> Dict:
    """One item of PairedImageDataset built from an option file's dataset section, rooted at ``root``."""
    opt = dict(load_yaml(str(ROOT / 'options' / option_file))['datasets'][phase])
    opt.update(dataroot_gt=str(root / opt['dataroot_gt']), dataroot_lq=str(root / opt['dataroot_lq']),
               io_backend=dict(opt['io_backend']), phase=phase, scale=1, gt_size=gt_size)
    dataset = PairedImageDataset(opt)
    assert len(dataset) > 0
    return dataset[0]


def no_partials(folder: Path) -> bool:
    return not list(folder.rglob('.*.partial'))


def run_script(name: str, *args: str) -> str:
    """Run ``scripts/<name>.py`` as a user would; check it succeeds and return its standard output."""
    done = subprocess.run([sys.executable, f'scripts/{name}.py', *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def prepare(plans: Iterable[SplitPlan], **settings: object) -> str:
    """Run the plans as the scripts do; the report lines, joined."""
    return '\n'.join(run_plans(plans, **settings))


# --------------------------------------------------------------------------- shared helpers
def test_crop_windows_follow_basicsr_extract_subimages() -> None:
    assert CropSpec(512, 256).boxes(720, 1280) == [(top, left) for top in (0, 208) for left in (0, 256, 512, 768)]
    assert CropSpec(32, 16).starts(40) == [0, 8] and CropSpec(32, 16, thresh_size=8).starts(40) == [0]
    assert CropSpec(32, 16).starts(20) == [0]  # a side shorter than the crop gives one window
    with pytest.raises(ValueError, match='positive'):
        CropSpec(0, 16)


# --------------------------------------------------------------------------- GoPro
def make_gopro_large(root: Path) -> Dict[str, np.ndarray]:
    """GOPRO_Large: split/sequence/{blur,blur_gamma,sharp}/frame.png; returns GT images by pair name."""
    gts = {}
    for split, sequences in (('train', ('GOPR0372_07_00', 'GOPR0374_11_00')), ('test', ('GOPR0384_11_00',))):
        for number, sequence in enumerate(sequences):
            for frame in ('000047', '000048'):
                folder = root / split / sequence
                seed = seed_of(split, sequence, frame)
                gts[f'{sequence}_{frame}'] = write_pair(folder / 'sharp' / f'{frame}.png',
                                                        folder / 'blur' / f'{frame}.png', seed)
                write_image(folder / 'blur_gamma' / f'{frame}.png', seed + 1)
    return gts


def test_gopro_large_to_lmdb_crops_and_test_pairs(tmp_path: Path) -> None:
    gts = make_gopro_large(tmp_path / 'GOPRO_Large')
    out = tmp_path / 'datasets' / 'GoPro'
    stdout = run_script('prepare_gopro', '--input', str(tmp_path / 'GOPRO_Large'), '--output', str(out), *SMALL_CROP)
    sharp, blur = read_lmdb(out / 'train' / 'sharp_crops.lmdb'), read_lmdb(out / 'train' / 'blur_crops.lmdb')
    assert len(sharp) == 4 * 6
    check_pairs_are_negatives(sharp, blur)
    assert np.array_equal(sharp['GOPR0372_07_00_000047_s005'], gts['GOPR0372_07_00_000047'][16:48, 16:48])
    target, inputs = read_lmdb(out / 'test' / 'target.lmdb'), read_lmdb(out / 'test' / 'input.lmdb')
    assert sorted(target) == ['GOPR0384_11_00_000047', 'GOPR0384_11_00_000048']
    assert np.array_equal(target['GOPR0384_11_00_000048'], gts['GOPR0384_11_00_000048'])
    check_pairs_are_negatives(target, inputs)
    assert 'WARNING GoPro train: found 4 pairs, the official release has 2103' in stdout
    item = dataset_item('nafnet_gopro_psnr.yml', 'train', tmp_path)
    assert item['gt'].shape == item['lq'].shape == (3, 16, 16)
    assert dataset_item('nafnet_gopro_psnr.yml', 'val', tmp_path)['gt'].shape == (3, *SIZE)
    assert no_partials(out)


def test_gopro_rerun_skips_dry_run_writes_nothing_overwrite_rebuilds(tmp_path: Path) -> None:
    make_gopro_large(tmp_path / 'in')

    def train_plans(crop: Optional[CropSpec] = SMALL) -> Iterable[SplitPlan]:
        return gopro_plans(tmp_path / 'in', tmp_path / 'out', splits=['train'], crop=crop)

    assert 'GoPro train: 4 pairs -> 24 sub-images of 32 px (step 16)' in prepare(train_plans(), dry_run=True)
    assert not (tmp_path / 'out').exists()
    prepare(train_plans())
    data_file = tmp_path / 'out' / 'train' / 'sharp_crops.lmdb' / 'data.mdb'
    stamp = data_file.stat().st_mtime_ns
    assert 'exist: skipped' in prepare(train_plans()) and data_file.stat().st_mtime_ns == stamp
    assert len(read_lmdb(data_file.parent)) == 24
    prepare(train_plans(crop=None), overwrite=True)
    assert len(read_lmdb(data_file.parent)) == 4 and no_partials(tmp_path / 'out')


def test_gopro_flat_layout_to_png_folders(tmp_path: Path) -> None:
    for split in ('train', 'test'):
        for name in ('GOPR0372_07_00-000047', 'GOPR0372_07_00-000048'):
            folder = tmp_path / 'in' / split
            write_pair(folder / 'target' / f'{name}.png', folder / 'input' / f'{name}.png', seed=seed_of(split, name))
    out = tmp_path / 'out'
    prepare(gopro_plans(tmp_path / 'in', out, backend='disk', crop=SMALL))
    assert len(list((out / 'train' / 'sharp_crops').glob('*.png'))) == 12
    assert sorted(p.name for p in (out / 'test' / 'input').iterdir()) == ['GOPR0372_07_00-000047.png',
                                                                         'GOPR0372_07_00-000048.png']
    opt = {'dataroot_gt': str(out / 'train' / 'sharp_crops'), 'dataroot_lq': str(out / 'train' / 'blur_crops'),
           'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale': 1, 'gt_size': 16, 'use_hflip': False,
           'use_rot': False}
    item = PairedImageDataset(opt)[0]
    assert np.allclose(item['lq'].numpy(), 1 - item['gt'].numpy(), atol=1e-6)


def test_gopro_unmatched_file_is_an_error_naming_it(tmp_path: Path) -> None:
    make_gopro_large(tmp_path / 'in')
    (tmp_path / 'in' / 'train' / 'GOPR0374_11_00' / 'blur' / '000048.png').unlink()
    with pytest.raises(ValueError, match=r'GT image\(s\) without LQ partner: .*GOPR0374_11_00/sharp/000048.png'):
        prepare(gopro_plans(tmp_path / 'in', tmp_path / 'out', crop=CropSpec(512, 256)))
    assert not (tmp_path / 'out').exists()


def test_failure_while_writing_leaves_no_lmdb(tmp_path: Path) -> None:
    make_gopro_large(tmp_path / 'in')
    broken = tmp_path / 'in' / 'train' / 'GOPR0374_11_00' / 'blur' / '000048.png'
    broken.write_bytes(broken.read_bytes()[:200])  # the header is intact, the pixel data is cut
    out = tmp_path / 'out'
    with pytest.raises(ValueError, match=f'OpenCV cannot read image {broken}'):
        prepare(gopro_plans(tmp_path / 'in', out, splits=['train'], crop=SMALL))
    assert not (out / 'train' / 'sharp_crops.lmdb').exists() and not (out / 'train' / 'blur_crops.lmdb').exists()
    assert not partial_path(out / 'train' / 'sharp_crops.lmdb').exists() and no_partials(out)


# --------------------------------------------------------------------------- RealBlur
def make_realblur(root: Path) -> Dict[str, List[str]]:
    """RealBlur root with RealBlur-J/-R folders and the four list files (train: 3 pairs, test: 1 pair)."""
    folders = {'J': 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref',
               'R': 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref'}
    lines: Dict[str, List[str]] = {}
    for variant, folder in folders.items():
        splits = (('train', (('scene001', 1), ('scene001', 2), ('scene002', 1))), ('test', (('scene230', 1),)))
        for split, scenes in splits:
            rows = []
            for scene, k in scenes:
                gt, blur = f'{folder}/{scene}/gt/gt_{k}.png', f'{folder}/{scene}/blur/blur_{k}.png'
                write_pair(root / gt, root / blur, seed=seed_of(variant, scene, k))
                rows.append(f'{gt} {blur}')
            lines[f'{variant}_{split}'] = rows
            (root / f'RealBlur_{variant}_{split}_list.txt').write_text('\n'.join(rows) + '\n')
    return lines


def test_realblur_lists_to_paired_lmdb(tmp_path: Path) -> None:
    make_realblur(tmp_path / 'RealBlur')
    out = tmp_path / 'datasets'
    run_script('prepare_realblur', '--input', str(tmp_path / 'RealBlur'), '--output', str(out), '--variants', 'J')
    train = out / 'RealBlur_J' / 'train'
    target, inputs = read_lmdb(train / 'target.lmdb'), read_lmdb(train / 'input.lmdb')
    assert sorted(target) == ['scene001_1', 'scene001_2', 'scene002_1']
    check_pairs_are_negatives(target, inputs)
    assert list(read_lmdb(out / 'RealBlur_J' / 'test' / 'target.lmdb')) == ['scene230_1']
    assert not (out / 'RealBlur_R').exists()
    assert dataset_item('restormer_realblur_psnr.yml', 'train', tmp_path)['lq'].shape == (3, 16, 16)
    assert dataset_item('restormer_realblur_psnr.yml', 'val', tmp_path)['lq'].shape == (3, *SIZE)


def test_realblur_missing_listed_file_is_an_error_naming_line_and_file(tmp_path: Path) -> None:
    lines = make_realblur(tmp_path / 'RealBlur')
    missing = tmp_path / 'RealBlur' / lines['R_test'][0].split()[1]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f'RealBlur_R_test_list.txt:1 names {missing}'):
        prepare(realblur_plans(tmp_path / 'RealBlur', tmp_path / 'out', variants=['R']), dry_run=True)
    with pytest.raises(FileNotFoundError, match='List file not found'):
        prepare(realblur_plans(tmp_path, tmp_path / 'out'))


# --------------------------------------------------------------------------- RealSR + City100
def make_realsr_city100(root: Path, v3: bool = True) -> Dict[str, np.ndarray]:
    """RealSR {Canon,Nikon}/{Train,Test}/4/<Cam>_<NNN>_{HR,LR4}.png (LR 4x smaller for V3) and City100
    City100_<camera>/<NNN>{H,L}.PNG; returns GT images by output name."""
    gts = {}
    lq_size = (SIZE[0] // 4, SIZE[1] // 4) if v3 else SIZE
    for camera in ('Canon', 'Nikon'):
        for split, ids in (('Train', ('001', '002')), ('Test', ('003',))):
            folder = root / 'RealSR' / camera / split / '4'
            for image_id in ids:
                gts[f'RealSR_{camera}_{image_id}'] = write_pair(folder / f'{camera}_{image_id}_HR.png',
                                                                folder / f'{camera}_{image_id}_LR4.png',
                                                                seed=seed_of(camera, split, image_id), lq_size=lq_size)
    for camera in ('NikonD5500', 'iPhoneX'):
        for image_id in ('001', '002', '016'):
            folder = root / 'City100' / f'City100_{camera}'
            gts[f'City100_{camera}_{image_id}'] = write_pair(folder / f'{image_id}H.PNG', folder / f'{image_id}L.PNG',
                                                             seed=seed_of(camera, image_id))
    return gts


def realsr_args(root: Path, *extra: str) -> List[str]:
    return ['--realsr', str(root / 'RealSR'), '--city100', str(root / 'City100'), '--output',
            str(root / 'datasets' / 'RealSR_City100'), '--city100-test-ids', '016', *extra]


def realsr_plans(root: Path, **settings: object) -> Iterable[SplitPlan]:
    """The package call matching ``realsr_args`` (whole images unless ``crop`` is given)."""
    settings.setdefault('city100_test_ids', ['016'])
    return realsr_city100_plans(root / 'RealSR', root / 'City100', root / 'datasets' / 'RealSR_City100', **settings)


def test_realsr_city100_merged_split_with_v3_lr_brought_to_hr_size(tmp_path: Path) -> None:
    gts = make_realsr_city100(tmp_path)
    run_script('prepare_realsr_city100', *realsr_args(tmp_path, *SMALL_CROP, '--workers', '2'))
    out = tmp_path / 'datasets' / 'RealSR_City100'
    target, inputs = read_lmdb(out / 'test' / 'target.lmdb'), read_lmdb(out / 'test' / 'input.lmdb')
    assert sorted(target) == ['City100_NikonD5500_016', 'City100_iPhoneX_016', 'RealSR_Canon_003', 'RealSR_Nikon_003']
    check_pairs_are_negatives({k: v for k, v in target.items() if k.startswith('City100')},
                              {k: v for k, v in inputs.items() if k.startswith('City100')})
    small = cv2.imread(str(tmp_path / 'RealSR' / 'Nikon' / 'Test' / '4' / 'Nikon_003_LR4.png'))
    assert np.array_equal(inputs['RealSR_Nikon_003'], cv2.resize(small, SIZE[::-1], interpolation=cv2.INTER_CUBIC))
    assert np.array_equal(target['RealSR_Nikon_003'], gts['RealSR_Nikon_003'])
    train = read_lmdb(out / 'train' / 'target_crops.lmdb')
    assert len(train) == (4 + 4) * 6  # RealSR Train 2 ids x 2 cameras, City100 ids 001/002 x 2 cameras
    cameras = {'RealSR': ('Canon', 'Nikon'), 'City100': ('NikonD5500', 'iPhoneX')}
    assert {key.rsplit('_s', 1)[0] for key in train} == {
        f'{dataset}_{camera}_{image_id}' for dataset, names in cameras.items() for camera in names
        for image_id in ('001', '002')}
    item = dataset_item('nafnet_realsr_city100_psnr.yml', 'train', tmp_path)
    assert item['gt'].shape == item['lq'].shape == (3, 16, 16)
    assert dataset_item('nafnet_realsr_city100_psnr.yml', 'val', tmp_path)['lq'].shape == (3, *SIZE)


def test_realsr_same_size_pairs_are_kept_and_wrong_sizes_rejected(tmp_path: Path) -> None:
    make_realsr_city100(tmp_path, v3=False)
    prepare(realsr_plans(tmp_path, splits=['test']))
    out = tmp_path / 'datasets' / 'RealSR_City100' / 'test'
    check_pairs_are_negatives(read_lmdb(out / 'target.lmdb'), read_lmdb(out / 'input.lmdb'))
    bad = tmp_path / 'RealSR' / 'Canon' / 'Train' / '4' / 'Canon_002_LR4.png'
    write_image(bad, seed=5, size=(13, 16))
    with pytest.raises(ValueError, match=f'Size mismatch: .* but LQ {bad} is 13x16'):
        prepare(realsr_plans(tmp_path, crop=CropSpec(512, 256)), dry_run=True)


def test_city100_missing_test_id_and_stray_files_are_errors(tmp_path: Path) -> None:
    make_realsr_city100(tmp_path)
    with pytest.raises(ValueError, match='City100 NikonD5500 has no pair with test id\\(s\\) 048'):
        prepare(realsr_plans(tmp_path, city100_test_ids=['016', '048']), dry_run=True)
    write_image(tmp_path / 'RealSR' / 'Canon' / 'Test' / '4' / 'Canon_003_LR2.png', seed=3)
    with pytest.raises(ValueError, match='Unexpected file .*Canon_003_LR2.png'):
        prepare(realsr_plans(tmp_path), dry_run=True)
