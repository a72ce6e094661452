"""ddr_basicsr.iqa.datasets on miniature copies of the eight datasets in their official formats.

The ``write_*`` functions build those copies (also used by test_eval_biqa.py); each returns the
expected (path relative to the root, subjective score) list in label-file order.
"""
import os

import cv2
import numpy as np
import pytest
from openpyxl import Workbook
from scipy.io import savemat

from ddr_basicsr.iqa.datasets import LIVE_FOLDERS, LOADERS, load_dataset

SIZE = (48, 64)  # (height, width) of the miniature images


def write_image(path, seed, size=SIZE):
    """A random smooth-plus-noise image (PNG/JPEG/BMP from the extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    height, width = size
    base = cv2.resize(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 4 + 6 * (seed % 5), base.shape)
    assert cv2.imwrite(str(path), np.clip(base + noise, 0, 255).astype(np.uint8))


def _write_xlsx(path, sheets):
    """sheets: {sheet name: list of rows}; the first sheet is written first."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)


def write_csiq(root, size=SIZE):
    rows = [(1600, 1, 'noise', 1, 0.01, 0.062), ('aerial_city', 2, 'jpeg', 2, 0.02, 0.31),
            (1600.0, 5, 'blur', 3, 0.03, 0.55), ('boston', 3, 'jpeg 2000', 1, 0.01, 0.12),
            ('bridge', 4, 'fnoise', 2, 0.02, 0.25), ('cactus', 6, 'contrast', 1, 0.01, 0.08)]
    files = ['dst_imgs/awgn/1600.AWGN.1.png', 'dst_imgs/jpeg/aerial_city.JPEG.2.png',
             'dst_imgs/blur/1600.blur.3.png',  # lower-case tag on disk: matched case-insensitively
             'dst_imgs/jpeg2000/boston.jpeg2000.1.png', 'dst_imgs/fnoise/bridge.fnoise.2.png',
             'dst_imgs/contrast/cactus.contrast.1.png']
    header_block = [('CSIQ DMOS',), (), ('all images',),
                    ('image', 'dst_idx', 'dst_type', 'dst_lev', 'dmos_std', 'dmos')]
    _write_xlsx(os.path.join(root, 'csiq.DMOS.xlsx'), {'notes': [('x',)], 'all_by_image': header_block + rows})
    for seed, name in enumerate(files):
        write_image(os.path.join(root, name), seed, size)
    write_image(os.path.join(root, 'src_imgs', '1600.png'), 99, size)  # reference: never listed
    return [(name, row[-1]) for name, row in zip(files, rows)]


def write_tid2013(root, size=SIZE):
    entries = [('i01_01_1.bmp', 5.51429), ('I01_02_5.BMP', 3.1), ('i25_24_3.bmp', 4.25)]
    on_disk = ['i01_01_1.bmp', 'i01_02_5.bmp', 'i25_24_3.bmp']
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'mos_with_names.txt'), 'w', newline='') as handle:
        handle.write(''.join(f'{score} {name}\r\n' for name, score in entries) + '\r\n')
    for seed, name in enumerate(on_disk):
        write_image(os.path.join(root, 'distorted_images', name), seed, size)
    write_image(os.path.join(root, 'reference_images', 'I01.BMP'), 98, size)
    return [(f'distorted_images/{name}', score) for name, (_, score) in zip(on_disk, entries)]


def write_kadid10k(root, size=SIZE):
    entries = [('I01_01_01.png', 4.57), ('I01_01_02.png', 4.33), ('I81_25_05.png', 1.2), ('I02_10_03.png', 2.9)]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'dmos.csv'), 'w') as handle:
        handle.write('dist_img,ref_img,dmos,var\n')
        handle.writelines(f'{name},{name[:3]}.png,{score},0.5\n' for name, score in entries)
    for seed, (name, _) in enumerate(entries):
        write_image(os.path.join(root, 'images', name), seed, size)
    write_image(os.path.join(root, 'images', 'I01.png'), 97, size)
    return [(f'images/{name}', score) for name, score in entries]


def write_koniq10k(root, size=SIZE):
    entries = [('10004473376.jpg', 3.1, 61.5), ('10007357496.jpg', 2.2, 40.25), ('10020766793.jpg', 3.9, 80.0)]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'koniq10k_scores_and_distributions.csv'), 'w') as handle:
        handle.write('"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"\n')
        handle.writelines(f'"{name}",0,1,2,1,0,4,{mos},0.5,{zscore}\n' for name, mos, zscore in entries)
    for seed, (name, _, _) in enumerate(entries):
        write_image(os.path.join(root, '1024x768', name), seed, size)
        write_image(os.path.join(root, '512x384', name), seed, (size[0] // 2 + 8, size[1] // 2 + 8))
    return [(f'1024x768/{name}', zscore) for name, _, zscore in entries]


def write_livec(root, size=SIZE):
    names = [f't{k}.bmp' for k in range(1, 8)] + ['10.bmp', '100.bmp', '1000.JPG']
    mos = [50.0] * 7 + [63.9, 25.3, 71.0]
    cell = np.empty((len(names), 1), dtype=object)
    for index, name in enumerate(names):
        cell[index, 0] = name
    os.makedirs(os.path.join(root, 'Data'), exist_ok=True)
    savemat(os.path.join(root, 'Data', 'AllImages_release.mat'), {'AllImages_release': cell})
    savemat(os.path.join(root, 'Data', 'AllMOS_release.mat'), {'AllMOS_release': np.array([mos])})
    for seed, name in enumerate(names):
        folder = os.path.join(root, 'Images', 'trainingImages' if name.startswith('t') else '')
        write_image(os.path.join(folder, name), seed, size)
    return [(f'Images/{name}', score) for name, score in zip(names[7:], mos[7:])]


LIVE_DISTORTED = ['jp2k/img1.bmp', 'jpeg/img3.bmp', 'wn/img2.bmp', 'gblur/img174.bmp', 'fastfading/img5.bmp']


def write_live(root, size=SIZE):
    """dmos.mat and dmos_realigned.mat over the 982 entries; only LIVE_DISTORTED have orgs=0 (and files)."""
    names = [f'{folder}/img{k}.bmp' for folder, count in LIVE_FOLDERS for k in range(1, count + 1)]
    orgs = np.array([[0 if name in LIVE_DISTORTED else 1 for name in names]], dtype=np.float64)
    dmos = np.arange(len(names), dtype=np.float64)[None] * 0.1
    realigned = 100 - dmos
    os.makedirs(root, exist_ok=True)
    savemat(os.path.join(root, 'dmos.mat'), {'dmos': dmos, 'orgs': orgs})
    savemat(os.path.join(root, 'dmos_realigned.mat'), {'dmos_new': realigned, 'dmos_std': dmos, 'orgs': orgs})
    for seed, name in enumerate(LIVE_DISTORTED):
        write_image(os.path.join(root, name), seed, size)
    write_image(os.path.join(root, 'refimgs', 'bikes.bmp'), 96, size)
    return [(name, float(realigned[0, names.index(name)])) for name in LIVE_DISTORTED], \
        [(name, float(dmos[0, names.index(name)])) for name in LIVE_DISTORTED]


def write_cid2013(root, size=SIZE):
    entries = [('IS_I_C01_D01', 'IS1/co1', 72.5), ('IS_II_C03_D02', 'IS2/co3', 40.0),
               ('IS_VI_C10_D03', 'IS6/co10', 55.5)]
    rows = [('CID2013 subjective data',), ('Source_ID', 'Image set specific  MOS', 'Realigned MOS')]
    rows += [(name, score - 1, score) for name, _, score in entries]
    _write_xlsx(os.path.join(root, 'CID2013 data - version 12112014.xlsx'), {'Readme': [('x',)], 'CID2013 MOS': rows})
    for seed, (name, folder, _) in enumerate(entries):
        write_image(os.path.join(root, folder, f'{name}.jpg'), seed, size)
    return [(f'{folder}/{name}.jpg', score) for name, folder, score in entries]


def write_spaq(root, size=SIZE):
    entries = [('00001.jpg', 42.0), ('00002.jpg', 75.5), ('00003.jpg', 12.25), ('00004.jpg', 60.0)]
    rows = [('Image name', 'MOS', 'Brightness', 'Colorfulness', 'Contrast', 'Noisiness', 'Sharpness')]
    rows += [(name, score, 50, 50, 50, 50, 50) for name, score in entries]
    _write_xlsx(os.path.join(root, 'Annotations', 'MOS and Image attribute scores.xlsx'), {'Sheet1': rows})
    for seed, (name, _) in enumerate(entries):
        write_image(os.path.join(root, 'TestImage', name), seed, size)
    return [(f'TestImage/{name}', score) for name, score in entries]


WRITERS = {'csiq': write_csiq, 'tid2013': write_tid2013, 'kadid10k': write_kadid10k, 'koniq10k': write_koniq10k,
           'livec': write_livec, 'cid2013': write_cid2013, 'spaq': write_spaq,
           'live': lambda root, size=SIZE: write_live(root, size)[0]}
HIGHER_BETTER = {'csiq': False, 'live': False, 'tid2013': True, 'kadid10k': True, 'koniq10k': True, 'livec': True,
                 'cid2013': True, 'spaq': True}


def _relative(dataset):
    return [(os.path.relpath(path, dataset.root).replace(os.sep, '/'), score) for path, score in dataset.items]


@pytest.mark.parametrize('name', sorted(WRITERS))
def test_loader_reads_the_official_files(tmp_path, name):
    expected = WRITERS[name](str(tmp_path))
    dataset = load_dataset(name, str(tmp_path))
    assert dataset.name == name
    assert _relative(dataset) == [(path, pytest.approx(score)) for path, score in expected]
    assert dataset.higher_better is HIGHER_BETTER[name]
    assert all(os.path.isfile(path) for path in dataset.paths)
    assert dataset.scores.dtype == np.float64 and len(dataset.scores) == len(expected)


def test_every_dataset_has_a_writer():
    assert set(WRITERS) == set(LOADERS)


def test_koniq_resolution_and_score_column(tmp_path):
    write_koniq10k(str(tmp_path))
    dataset = load_dataset('koniq10k', str(tmp_path), resolution='512x384', score_column='MOS')
    assert _relative(dataset)[0] == ('512x384/10004473376.jpg', 3.1)
    assert dataset.options == {'resolution': '512x384', 'score_column': 'MOS'}
    assert dataset.score_label == 'MOS'
    with pytest.raises(ValueError, match='resolution'):
        load_dataset('koniq10k', str(tmp_path), resolution='800x600')


def test_live_original_dmos_and_reference_copies_dropped(tmp_path):
    realigned, original = write_live(str(tmp_path))
    dataset = load_dataset('live', str(tmp_path), dmos='original')
    assert _relative(dataset) == [(path, pytest.approx(score)) for path, score in original]
    assert len(load_dataset('live', str(tmp_path)).items) == len(realigned) == 5
    with pytest.raises(ValueError, match='dmos'):
        load_dataset('live', str(tmp_path), dmos='new')


def test_livec_drops_the_seven_training_images(tmp_path):
    write_livec(str(tmp_path))
    names = [os.path.basename(path) for path in load_dataset('livec', str(tmp_path)).paths]
    assert names == ['10.bmp', '100.bmp', '1000.JPG']


def test_missing_label_file_is_named(tmp_path):
    write_tid2013(str(tmp_path))
    os.remove(tmp_path / 'mos_with_names.txt')
    with pytest.raises(FileNotFoundError, match='mos_with_names.txt'):
        load_dataset('tid2013', str(tmp_path))


def test_missing_image_is_named(tmp_path):
    write_kadid10k(str(tmp_path))
    os.remove(tmp_path / 'images' / 'I81_25_05.png')
    with pytest.raises(FileNotFoundError, match='I81_25_05.png'):
        load_dataset('kadid10k', str(tmp_path))


def test_missing_cid_image_and_wrong_sheet(tmp_path):
    write_cid2013(str(tmp_path))
    os.remove(tmp_path / 'IS2' / 'co3' / 'IS_II_C03_D02.jpg')
    with pytest.raises(FileNotFoundError, match='IS_II_C03_D02'):
        load_dataset('cid2013', str(tmp_path))
    _write_xlsx(str(tmp_path / 'csiq.DMOS.xlsx'), {'other': [('image', 'dmos')]})
    with pytest.raises(ValueError, match='all_by_image'):
        load_dataset('csiq', str(tmp_path))


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(ValueError, match='unknown IQA dataset'):
        load_dataset('pipal', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='root folder'):
        load_dataset('csiq', str(tmp_path / 'absent'))
