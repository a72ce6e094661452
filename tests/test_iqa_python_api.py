"""DDR.quality of files, folders, PIL images and numpy arrays (RGB and BGR): ddr-score's numbers (tiny CLIP, CPU)."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ddr_basicsr.core.ddr import DDR
from ddr_basicsr.core.prompts import BIQA_DEGRADATIONS
from ddr_basicsr.iqa.python_api import image_tensors, iqa_ddr
from ddr_basicsr.utils.image_io import ImageTooLargeError
from iqa_examples import ddr_score, write_rgb_photos


@pytest.fixture(scope='module')
def tiny_ddr(tiny_clip_path):
    return DDR(pretrained=tiny_clip_path, degradations=BIQA_DEGRADATIONS, device='cpu')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """The RGB and grey photos plus an RGBA PNG (alpha over white) and a 16-bit RGB PNG."""
    folder = tmp_path_factory.mktemp('python_api') / 'photos'
    write_rgb_photos(folder)
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)
    assert cv2.imwrite(str(folder / 'e_alpha.png'), rgba)
    assert cv2.imwrite(str(folder / 'f_deep.png'), rng.integers(0, 65536, (40, 64, 3), dtype=np.uint16))
    return folder


@pytest.fixture(scope='module')
def reference(folder, tiny_clip_path, tmp_path_factory):
    """{path: ddr} of one ddr-score run of the folder."""
    rows = ddr_score([str(folder)], tiny_clip_path, tmp_path_factory.mktemp('csv') / 'scores.csv')
    return {path: row['ddr'] for path, row in rows.items()}


def _max_difference(scores: torch.Tensor, expected) -> float:
    return float((scores - torch.tensor(list(expected), dtype=scores.dtype)).abs().max())


def test_a_folder_scores_as_ddr_score_in_its_order(tiny_ddr, folder, reference):
    assert len(reference) == 7
    scores = tiny_ddr.quality(str(folder))
    assert _max_difference(scores, reference.values()) < 1e-6
    assert _max_difference(tiny_ddr.quality(folder), reference.values()) < 1e-6  # a pathlib.Path too


def test_paths_one_or_a_list_score_as_ddr_score(tiny_ddr, reference):
    paths = list(reference)
    assert _max_difference(tiny_ddr.quality(paths, batch_size=2), reference.values()) < 1e-6
    assert _max_difference(tiny_ddr.quality(paths[3]), [reference[paths[3]]]) < 1e-6
    responses = tiny_ddr.quality_responses([paths[0], paths[-1]])
    assert list(responses) == list(BIQA_DEGRADATIONS) and responses['blur'].shape == (2,)


def test_pil_images_score_as_ddr_score(tiny_ddr, reference):
    images = [Image.open(path) for path in reference if not path.endswith('f_deep.png')]  # PIL keeps 8 bits of it
    assert {image.mode for image in images} == {'RGB', 'L', 'RGBA'}
    expected = [score for path, score in reference.items() if not path.endswith('f_deep.png')]
    assert _max_difference(tiny_ddr.quality(images), expected) < 1e-6
    palette = images[0].convert('P')  # converted through RGBA
    assert tiny_ddr.quality(palette).shape == (1,)


def test_bgr_and_rgb_arrays_score_as_ddr_score(tiny_ddr, reference):
    bgr = [cv2.imread(path, cv2.IMREAD_UNCHANGED) for path in reference]  # grey, BGR, BGRA, 16-bit BGR
    assert {array.ndim for array in bgr} == {2, 3}
    assert {array.dtype for array in bgr} == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert _max_difference(tiny_ddr.quality(bgr, channel_order='BGR'), reference.values()) < 1e-6
    rgb = [array if array.ndim == 2 else np.concatenate([array[:, :, 2::-1], array[:, :, 3:]], axis=2)
           for array in bgr]
    assert _max_difference(tiny_ddr.quality(rgb), reference.values()) < 1e-6
    assert _max_difference(tiny_ddr.quality(rgb, channel_order='RGB'), reference.values()) < 1e-6
    assert _max_difference(tiny_ddr.quality(bgr[:2]), list(reference.values())[:2]) > 1e-5  # the order matters
    floats = [array.astype(np.float64) / 255 for array in rgb[:4]]  # float arrays are taken as [0, 1]
    assert _max_difference(tiny_ddr.quality(floats), list(reference.values())[:4]) < 1e-6


def test_a_mixed_list_keeps_its_order(tiny_ddr, reference):
    paths = list(reference)
    mixed = [torch.from_numpy(cv2.imread(paths[0])[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255,
             Image.open(paths[1]), paths[2]]
    assert _max_difference(tiny_ddr.quality(mixed), [reference[path] for path in paths[:3]]) < 1e-6


def test_files_get_ddr_score_limits_and_the_python_way_around(tiny_ddr, tmp_path):
    strip = tmp_path / 'strip.png'
    assert cv2.imwrite(str(strip), np.full((16, 600, 3), 128, dtype=np.uint8))  # 37.5:1 > 32:1
    with pytest.raises(ImageTooLargeError, match=r'aspect ratio of 37\.5:1.*image_tensors\(paths, max_pixels'):
        tiny_ddr.quality(str(strip))
    (image,) = image_tensors(str(strip), max_aspect_ratio=None)
    assert image.shape == (3, 16, 600) and tiny_ddr.quality([image]).shape == (1,)


@pytest.mark.parametrize('images, error, match', [
    (np.zeros((3, 40, 40), dtype=np.uint8), ValueError, r'channels-first.*array\.transpose\(1, 2, 0\)'),
    (np.zeros((40, 40, 3), dtype=np.int64), ValueError, 'unsupported pixel type int64'),
    (np.zeros((2, 40, 40, 3), dtype=np.uint8), ValueError, r'for a batch of images pass list\(array\)'),
    ({'image': 1}, TypeError, 'image 0: expected a file or folder path, a PIL image, a numpy array'),
    ('missing.png', FileNotFoundError, 'image file not found: missing.png'),
])
def test_bad_inputs_name_the_problem(tiny_ddr, images, error, match):
    with pytest.raises(error, match=match):
        tiny_ddr.quality(images)


def test_bad_channel_order_and_empty_folder(tiny_ddr, tmp_path):
    with pytest.raises(ValueError, match="channel_order must be 'RGB' or 'BGR'"):
        tiny_ddr.quality(np.zeros((40, 40, 3), dtype=np.uint8), channel_order='bgr')
    (tmp_path / 'notes.txt').write_text('no image here')
    with pytest.raises(ValueError, match='no image file in this folder'):
        tiny_ddr.quality(str(tmp_path))


def test_iqa_ddr_reads_a_prompt_file_as_ddr_score_does(tiny_clip_path, folder, tmp_path):
    prompts = tmp_path / 'prompts.yml'
    prompts.write_text('haze: [hazy, clear]\n')
    ddr = iqa_ddr(prompts=str(prompts), pretrained=tiny_clip_path, device='cpu')
    assert ddr.degradation_names == ('haze',)
    expected = ddr_score([str(folder)], tiny_clip_path, tmp_path / 'haze.csv', '--prompts', str(prompts))
    assert _max_difference(ddr.quality(folder), [row['ddr'] for row in expected.values()]) < 1e-6
    assert iqa_ddr(pretrained=tiny_clip_path, device='cpu').degradation_names == tuple(BIQA_DEGRADATIONS)
