"""ddr_basicsr.utils.image_io: bit depths, grey, alpha, formats, bad files, resizing."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ddr_basicsr.utils.image_files import is_image_file
from ddr_basicsr.utils.image_io import decode_image, read_image, resize_short_side, to_float, to_tensor


def _rgb8(height=12, width=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_rgb(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def test_png_8bit_round_trip_is_exact_and_stays_uint8(tmp_path):
    rgb = _rgb8()
    _write_rgb(tmp_path / 'a.png', rgb)
    decoded = decode_image(str(tmp_path / 'a.png'))
    assert decoded.dtype == np.uint8 and decoded.shape == (12, 20, 3)
    np.testing.assert_array_equal(decoded, rgb)
    image = read_image(str(tmp_path / 'a.png'))
    assert image.dtype == torch.float32 and image.shape == (3, 12, 20)
    np.testing.assert_allclose(image.numpy(), rgb.transpose(2, 0, 1) / 255.0, atol=1e-7)


@pytest.mark.parametrize('extension', ['.png', '.tif'])
def test_16bit_images_are_divided_by_65535(tmp_path, extension):
    rgb = np.random.default_rng(1).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    path = tmp_path / f'deep{extension}'
    _write_rgb(path, rgb)
    image = read_image(str(path))
    np.testing.assert_allclose(image.numpy(), rgb.transpose(2, 0, 1) / 65535.0, atol=1e-7)


def test_grey_is_replicated_to_three_channels(tmp_path):
    grey = _rgb8()[:, :, 0]
    assert cv2.imwrite(str(tmp_path / 'g.png'), grey)
    image = read_image(str(tmp_path / 'g.png'))
    assert image.shape == (3, 12, 20)
    for channel in range(3):
        np.testing.assert_allclose(image[channel].numpy(), grey / 255.0, atol=1e-7)


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 0]
    rgba[..., 3] = [[0, 255, 51], [102, 153, 204]]
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    image = read_image(str(tmp_path / 'a.png')).numpy()
    alpha = rgba[..., 3] / 255.0
    for channel, value in enumerate((200, 100, 0)):
        expected = value / 255.0 * alpha + (1 - alpha)
        np.testing.assert_allclose(image[channel], expected, atol=1e-6)
    np.testing.assert_allclose(image[:, 0, 0], [1.0, 1.0, 1.0])  # transparent -> white


def test_grey_with_alpha(tmp_path):
    grey_alpha = np.array([[[40, 255], [40, 0]]], dtype=np.uint8)  # (1, 2, 2): L and A
    Image.fromarray(grey_alpha, 'LA').save(tmp_path / 'la.png')
    image = read_image(str(tmp_path / 'la.png')).numpy()
    np.testing.assert_allclose(image[:, 0, 0], [40 / 255.0] * 3, atol=1e-6)
    np.testing.assert_allclose(image[:, 0, 1], [1.0] * 3, atol=1e-6)


def test_jpeg_and_bmp(tmp_path):
    rgb = np.full((16, 24, 3), (30, 120, 220), dtype=np.uint8)
    _write_rgb(tmp_path / 'a.jpg', rgb)
    _write_rgb(tmp_path / 'a.bmp', rgb)
    np.testing.assert_allclose(read_image(str(tmp_path / 'a.jpg')).numpy(), rgb.transpose(2, 0, 1) / 255.0,
                               atol=3 / 255.0)
    np.testing.assert_array_equal(decode_image(str(tmp_path / 'a.bmp')), rgb)


def test_float_tiff_is_clipped_to_unit_range(tmp_path):
    data = np.array([[[-0.5, 0.25, 1.5]]], dtype=np.float32)  # stored as BGR
    assert cv2.imwrite(str(tmp_path / 'f.tif'), data)
    image = read_image(str(tmp_path / 'f.tif')).numpy()[:, 0, 0]
    np.testing.assert_allclose(image, [1.0, 0.25, 0.0])  # RGB order of the clipped BGR values


def test_missing_empty_and_corrupt_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        decode_image(str(tmp_path / 'nope.png'))
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(ValueError, match='empty'):
        decode_image(str(tmp_path / 'empty.png'))
    (tmp_path / 'bad.jpg').write_bytes(b'this is not an image at all' * 10)
    with pytest.raises(ValueError, match=r'bad\.jpg: cannot decode'):
        decode_image(str(tmp_path / 'bad.jpg'))


def test_to_float_and_to_tensor():
    array = np.array([[[0, 128, 255]]], dtype=np.uint8)
    tensor = to_tensor(array)
    assert tensor.shape == (3, 1, 1) and tensor.dtype == torch.uint8
    np.testing.assert_allclose(to_float(tensor).flatten().numpy(), [0.0, 128 / 255.0, 1.0])
    assert to_float(torch.tensor([0.5], dtype=torch.float64)).dtype == torch.float32


def test_resize_short_side():
    image = torch.rand(3, 60, 100)
    resized = resize_short_side(image, 30)
    assert resized.shape == (3, 30, 50)
    assert resize_short_side(image, 60) is image  # no upscaling, no copy
    assert resize_short_side(image, None) is image
    constant = torch.full((3, 40, 80), 200, dtype=torch.uint8)
    out = resize_short_side(constant, 20)
    assert out.dtype == torch.float32 and out.shape == (3, 20, 40)
    torch.testing.assert_close(out, torch.full_like(out, 200 / 255.0))


def test_is_image_file():
    assert is_image_file('x/a.PNG') and is_image_file('b.jpeg') and is_image_file('c.TIFF')
    assert not is_image_file('notes.txt')
