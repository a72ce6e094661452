"""The no-reference baselines against the original implementations' values on the five calibration images of
``../shared/reference/iqa_calibration`` (a faithful port lands within 5 % per image), and the one NIQE of the
project reached from every route (reports, Table 3, BasicSR's validation metric)."""
import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric

from ddr_basicsr.iqa.evaluation import niqe_of_file, niqe_score
from ddr_basicsr.utils.image_io import read_image

CALIBRATION = Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'iqa_calibration'
TOLERANCE = 0.05


@pytest.fixture(scope='module')
def official():
    """{method: {image file: official value}} of ``official_values.csv``."""
    table = CALIBRATION / 'official_values.csv'
    if not table.is_file():
        pytest.skip(f'calibration data not found at {CALIBRATION} (the shared folder ../shared is absent)')
    with open(table, newline='') as handle:
        return {row['Method']: {name: float(value) for name, value in row.items() if name != 'Method'}
                for row in csv.DictReader(handle)}


def _within(ours, official, method):
    misses = {name: (value, official[method][name]) for name, value in ours.items()
              if abs(value / official[method][name] - 1) > TOLERANCE}
    assert set(ours) == set(official[method]) and not misses, misses


def test_niqe_matches_the_original_release(official):
    ours = {}
    for name in official['niqe']:
        path, value, error = niqe_of_file((str(CALIBRATION / name), None))
        assert not error
        ours[name] = value
    _within(ours, official, 'niqe')


def _pyiqa_scores(name):
    pyiqa = pytest.importorskip('pyiqa', reason='pyiqa is an optional extra (pip install ddr-basicsr[iqa])')
    metric = pyiqa.create_metric(name, device=torch.device('cpu'))
    with torch.no_grad():
        return {image: float(metric(read_image(str(CALIBRATION / image))[None])) for image in sorted(
            os.listdir(CALIBRATION)) if image.endswith('.bmp')}


def test_piqe_matches_the_original_release(official):
    _within(_pyiqa_scores('piqe'), official, 'piqe')


def test_ilniqe_matches_the_original_release(official):
    pytest.importorskip('pyiqa', reason='pyiqa is an optional extra (pip install ddr-basicsr[iqa])')
    from pyiqa.utils.download_util import DEFAULT_CACHE_DIR
    parameters = os.path.join(DEFAULT_CACHE_DIR, 'ILNIQE_templateModel.mat')
    if not os.path.isfile(parameters):
        pytest.skip(f'IL-NIQE parameter file {parameters} not available (pyiqa downloads it; offline here)')
    _within(_pyiqa_scores('ilniqe'), official, 'ilniqe')


def test_validation_metric_niqe_is_the_project_niqe():
    """BasicSR's ``type: calculate_niqe`` validation block (crop_border 0, on tensor2img's BGR uint8) gives
    :func:`niqe_score` of the same image."""
    rng = np.random.default_rng(0)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8), (5, 5), 1.5)
    validation = calculate_metric({'img': bgr}, {'type': 'calculate_niqe', 'crop_border': 0})
    assert validation == pytest.approx(niqe_score(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))),
                                       rel=1e-9)
    with pytest.raises(ValueError, match='image too small for NIQE: 150x90 px'):
        niqe_score(np.zeros((3, 90, 150), dtype=np.uint8))
