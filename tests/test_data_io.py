"""keras_pu.data.io: every pixel format, EXIF orientation, broken files."""

import io

import numpy as np
import pytest
from PIL import Image
from PIL import ImageFile

from keras_pu.data import ImageReadError
from keras_pu.data import image_size
from keras_pu.data import read_image
from keras_pu.data import read_mask
from tests.dataset_factory import disk_pair


@pytest.fixture
def rgb():
    return disk_pair((20, 30), seed=0)


def test_rgb_png_roundtrip(tmp_path, rgb):
    image, _ = rgb
    Image.fromarray(image).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, image)
    gray = read_image(tmp_path / "a.png", channels=1)
    assert gray.shape == (20, 30, 1)
    np.testing.assert_array_equal(gray[..., 0], np.asarray(Image.fromarray(image).convert("L")))


def test_grayscale_is_replicated_to_rgb(tmp_path, rgb):
    gray = np.asarray(Image.fromarray(rgb[0]).convert("L"))
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0      # transparent: black
    rgba[1, 1, 3] = 128    # half transparent: darkened
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (4, 4, 3)
    assert (out[0, 0] == 0).all()
    assert (out[1, 1] == round(200 * 128 / 255)).all()
    assert (out[2, 2] == 200).all()


def test_palette_and_cmyk(tmp_path, rgb):
    image, _ = rgb
    Image.fromarray(image).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "p.png")
    pal = read_image(tmp_path / "p.png")
    assert pal.shape == (20, 30, 3) and np.abs(pal.astype(int) - image).mean() < 12
    Image.fromarray(image).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    cmyk = read_image(tmp_path / "c.jpg")
    assert cmyk.shape == (20, 30, 3) and np.abs(cmyk.astype(int) - image).mean() < 12


@pytest.mark.parametrize("mode", ["range", "full"])
def test_16_bit(tmp_path, mode):
    values = np.array([[0, 1000], [2000, 4000]], np.uint16)   # 12-bit data
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode.startswith("I")
    out = read_image(tmp_path / "a.png", channels=1, high_bit_depth=mode)[..., 0]
    if mode == "range":   # 0..max -> 0..255
        np.testing.assert_array_equal(out, [[0, 64], [128, 255]])
    else:                 # /257
        np.testing.assert_array_equal(out, np.rint(values / 257.0))
    assert read_image(tmp_path / "a.png").shape == (2, 2, 3)


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :5] = 255                         # bright left band
    exif = Image.Exif()
    exif[0x0112] = 6                           # rotate 90 degrees clockwise to view
    Image.fromarray(image).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:5].mean() > 200 and out[-5:].mean() < 50   # band now on top
    assert image_size(tmp_path / "o.jpg") == (20, 10)


def test_resize_on_read(tmp_path, rgb):
    image, mask = rgb
    Image.fromarray(image).save(tmp_path / "a.jpg", quality=95)
    out = read_image(tmp_path / "a.jpg", size=(8, 12))
    assert out.shape == (8, 12, 3)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    small = read_mask(tmp_path / "m.png", size=(10, 15))
    assert small.shape == (10, 15) and small.dtype == bool
    # Nearest samples each output pixel centre: input pixel 2i + 1.
    np.testing.assert_array_equal(small, mask[1::2, 1::2])


def test_jpeg_mask_is_thresholded(tmp_path, rgb):
    _, mask = rgb
    values = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, -1)
    Image.fromarray(values).save(tmp_path / "m.jpg", quality=75)
    raw = np.asarray(Image.open(tmp_path / "m.jpg").convert("L"))
    assert len(np.unique(raw)) > 2          # lossy: not just 0 and 255
    out = read_mask(tmp_path / "m.jpg")
    assert out.dtype == bool
    assert (out != mask).mean() < 0.01


def test_label_map_masks_and_or_merge(tmp_path):
    a = np.zeros((6, 6), np.uint8)
    a[:2] = 1                                # 0/1 label map
    b = np.zeros((6, 6), np.uint8)
    b[-2:] = 255
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    merged = read_mask([tmp_path / "a.png", tmp_path / "b.png"])
    np.testing.assert_array_equal(merged, (a == 1) | (b == 255))
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="c.png"):
        read_mask([tmp_path / "a.png", tmp_path / "c.png"])


def test_rgba_and_16_bit_masks(tmp_path):
    mask = np.zeros((6, 6), bool)
    mask[2:4, 2:4] = True
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[mask] = (255, 255, 255, 255)        # transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "a.png"), mask)
    Image.fromarray(mask.astype(np.uint16) * 65535).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), mask)


def _truncated_jpeg(path, rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated_jpeg", "corrupt_png"])
def test_broken_files_raise_image_read_error(tmp_path, rgb, case):
    path = tmp_path / f"broken_{case}.png"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("not an image")
    elif case == "truncated_jpeg":
        path = tmp_path / "broken.jpg"
        _truncated_jpeg(path, rgb[0])
    elif case == "corrupt_png":
        buffer = io.BytesIO()
        Image.fromarray(rgb[0]).save(buffer, "PNG")
        data = bytearray(buffer.getvalue())
        data[60:80] = b"\x00" * 20            # inside the image data
        path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert path.name in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ImageReadError, match=path.name):
        read_mask(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        read_image("x.png", channels=4)
    with pytest.raises(ValueError, match="high_bit_depth"):
        read_image("x.png", high_bit_depth="auto")
    with pytest.raises(ValueError, match="no mask file"):
        read_mask([])
