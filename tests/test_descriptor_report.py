"""ddr_basicsr.iqa.descriptor (and scripts/descriptor_report.py run as a user would): attributes
(colorfulness, CPBD sharpness), SRCC table, montage."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import stats

from ddr_basicsr.core.prompts import TABLE7_WORDS
from ddr_basicsr.iqa import descriptor as report
from ddr_basicsr.iqa.cpbd import cpbd
from ddr_basicsr.iqa.scoring import build_ddr
from test_iqa_datasets import write_csiq

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'descriptor_report.py'


def _read_csv(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def _stripes(size=128, period=16):
    columns = (np.arange(size) // (period // 2)) % 2
    grey = np.tile(columns * 200 + 20, (size, 1)).astype(np.float64)
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_colorfulness_formula():
    assert report.colorfulness(np.full((8, 8, 3), 90.0)) == pytest.approx(0.0)
    image = np.zeros((4, 4, 3))
    image[:, :2, 0] = 255.0  # half red, half black: rg in {255, 0}, yb in {127.5, 0}
    expected = math.hypot(127.5, 63.75) * 1.3
    assert report.colorfulness(image) == pytest.approx(expected)


def test_cpbd_sharpness_is_the_reference_cpbd():
    rng = np.random.default_rng(3)
    steps = np.kron(rng.integers(0, 256, (4, 8)), np.ones((16, 16)))
    sharp, blurred = (np.repeat(cv2.GaussianBlur(steps, (0, 0), sigma)[:, :, None], 3, axis=2) for sigma in (0.7, 1.5))
    assert report.cpbd_sharpness(sharp) == cpbd(sharp) > 0.2
    assert report.cpbd_sharpness(blurred) == cpbd(blurred) == 0.0
    assert report.cpbd_sharpness(np.full((128, 128, 3), 77.0)) == 0.0


def test_montage_selection():
    records = [{'path': str(k), 'blur': float(k)} for k in range(7)]
    chosen = [record['path'] for record in report.montage_selection(records, 'blur', 2)]
    assert chosen == ['6', '5', '0', '1']
    assert len(report.montage_selection(records, 'blur', 10)) == 6  # k reduced to 3: no overlap


def test_mos_csv_errors(tmp_path):
    path = tmp_path / 'mos.csv'
    path.write_text('image,mos\na.png,3\nsub/a.png,4\n')
    with pytest.raises(ValueError, match='twice'):
        report.read_mos_csv(str(path), 'image', 'mos', False)
    with pytest.raises(ValueError, match='--mos-column'):
        report.read_mos_csv(str(path), 'image', 'MOS', False)


def _write_folder(folder):
    """Eight 64x64 images: more or less colourful, more or less blurred; and a MOS file."""
    folder.mkdir()
    rng = np.random.default_rng(3)
    rows = ['image,mos']
    for index in range(8):
        base = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
        grey = base.mean(axis=2, keepdims=True)
        mix = index / 7.0
        image = grey + mix * (base - grey)
        # slightly soft (sigma 0.6) or blurred (sigma 2): perfect steps give no CPBD edges (equal Sobel neighbours)
        image = cv2.GaussianBlur(image, (0, 0), 2.0 if index % 2 else 0.6)
        assert cv2.imwrite(str(folder / f'im{index}.png'), np.clip(image, 0, 255).astype(np.uint8))
        rows.append(f'im{index}.png,{index * 0.5 + (index % 2)}')
    (folder / 'mos.csv').write_text('\n'.join(rows) + '\n')


def test_report_on_a_folder(tiny_clip_path, tmp_path):
    _write_folder(tmp_path / 'imgs')
    out = tmp_path / 'out'
    # what descriptor_report.py IMGS --mos-csv IMGS/mos.csv --pretrained TINY --device cpu --workers 0 --top-k 3 does
    images = report.gather_quality([str(tmp_path / 'imgs')], mos_csv=str(tmp_path / 'imgs' / 'mos.csv'))
    ddr = build_ddr('ViT-B-32', tiny_clip_path, None, None, 'cpu', 'fp32', default_degradations=tuple(TABLE7_WORDS))
    markdown, failures = report.descriptor_report(ddr, images, str(out), top_k=3, source='imgs', workers=0)
    assert failures == [] and markdown.startswith('# DDR as an image descriptor (paper Table 2 style)')
    scores = _read_csv(out / 'descriptor_scores.csv')
    assert [Path(row['path']).name for row in scores] == [f'im{k}.png' for k in range(8)]
    assert list(scores[0]) == ['path', 'ddr_color', 'ddr_noise', 'ddr_blur', 'ddr_exposure', 'ddr_content',
                               'colorfulness', 'sharpness', 'quality']
    assert float(scores[0]['colorfulness']) == pytest.approx(0.0, abs=1e-3)  # im0 is grey
    assert float(scores[3]['quality']) == pytest.approx(2.5)
    table = {row['degradation']: row for row in _read_csv(out / 'descriptor_srcc.csv')}
    assert list(table) == ['color', 'noise', 'blur', 'exposure', 'content']
    for name in table:
        for attribute in ('colorfulness', 'sharpness', 'quality'):
            ddr = [float(row[f'ddr_{name}']) for row in scores]
            expected = stats.spearmanr(ddr, [float(row[attribute]) for row in scores])[0]
            assert float(table[name][attribute]) == pytest.approx(expected, abs=1e-4)
    assert table['color']['paper_colorfulness'] == '0.757'
    assert '| blur |' in (out / 'descriptor_srcc.md').read_text()
    montage = cv2.imread(str(out / 'descriptor_montage.png'))
    assert montage is not None and montage.shape[0] > montage.shape[1] * 0.5  # 5 rows of 6 thumbnails


def test_report_on_csiq_uses_negated_dmos(tiny_clip_path, tmp_path):
    expected = dict(write_csiq(str(tmp_path / 'csiq'), size=(64, 80)))  # CPBD needs a 64x64 block
    out = tmp_path / 'out'
    # what descriptor_report.py --dataset csiq=ROOT --degradations blur,color --pretrained TINY --device cpu
    # --workers 0 does
    images = report.gather_quality(dataset=('csiq', str(tmp_path / 'csiq')))
    ddr = build_ddr('ViT-B-32', tiny_clip_path, 'blur,color', None, 'cpu', 'fp32',
                    default_degradations=tuple(TABLE7_WORDS))
    _, failures = report.descriptor_report(ddr, images, str(out), source='csiq', workers=0)
    assert failures == []
    scores = _read_csv(out / 'descriptor_scores.csv')
    assert len(scores) == 6
    for row in scores:
        relative = Path(row['path']).relative_to(tmp_path / 'csiq').as_posix()
        assert float(row['quality']) == pytest.approx(-expected[relative])
    assert [row['degradation'] for row in _read_csv(out / 'descriptor_srcc.csv')] == ['blur', 'color']


def test_script_parses_its_options():
    run = subprocess.run([sys.executable, str(SCRIPT), '--help'], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and '--mos-csv' in run.stdout and '--degradations' in run.stdout
