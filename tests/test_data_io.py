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


# --- Label-valued masks (issue #17, defect 1) ------------------------------

@pytest.mark.parametrize("labels", [(0, 1), (0, 2), (0, 255), (0, 1, 2, 128, 200)])
def test_label_valued_masks_read_every_non_zero_label(tmp_path, labels):
    values = np.zeros((8, 10), np.uint8)
    for i, label in enumerate(labels[1:]):
        values[i + 1, 1:9] = label          # one row per label
    Image.fromarray(values).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), values > 0)
    # Also as TIFF and BMP (lossless), and 16-bit where label 1 must survive
    # the 16-bit scaling.
    Image.fromarray(values).save(tmp_path / "m.tif")
    Image.fromarray(values).save(tmp_path / "m.bmp")
    Image.fromarray(values.astype(np.uint16) * 257).save(tmp_path / "w.png")
    for name in ("m.tif", "m.bmp", "w.png"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), values > 0)


def test_label_mask_with_a_lossless_colour_label(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1] = (0, 0, 1)                   # luma of this pixel rounds to 0
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = np.zeros((4, 4), bool)
    expected[1, 1] = True
    np.testing.assert_array_equal(read_mask(tmp_path / "c.png"), expected)


def test_soft_lossless_mask_warns_and_reads_non_zero(tmp_path):
    from keras_pu.data import MaskWarning

    ramp = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (3, 1))  # 25 levels
    Image.fromarray(ramp).save(tmp_path / "soft.png")
    with pytest.warns(MaskWarning, match="soft.png"):
        out = read_mask(tmp_path / "soft.png")
    np.testing.assert_array_equal(out, ramp > 0)
    # An explicit threshold is the documented way to binarise it.
    np.testing.assert_array_equal(
        read_mask(tmp_path / "soft.png", threshold=127), ramp > 127
    )


def test_explicit_threshold_never_empties_a_mask_silently(tmp_path):
    from keras_pu.data import MaskWarning

    values = np.zeros((4, 4), np.uint8)
    values[1:3, 1:3] = 2
    Image.fromarray(values).save(tmp_path / "m.png")
    with pytest.warns(MaskWarning, match="read as empty"):
        assert not read_mask(tmp_path / "m.png", threshold=127).any()


def test_ambiguous_jpeg_label_mask_is_an_error(tmp_path):
    values = np.zeros((32, 32, 3), np.uint8)
    values[8:24, 8:24] = 100                 # a faint mask, stored lossily
    Image.fromarray(values).save(tmp_path / "m.jpg", quality=90)
    with pytest.raises(ImageReadError, match="ambiguous JPEG mask"):
        read_mask(tmp_path / "m.jpg")


def test_empty_masks_stay_empty(tmp_path):
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "e.png")
    assert not read_mask(tmp_path / "e.png").any()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "e.jpg")
    assert not read_mask(tmp_path / "e.jpg").any()


# --- Files Pillow misreads (issue #17, defect 7) ---------------------------

def three_sample_tiff(pixels, photometric=1, byte_order="<"):
    """An uncompressed baseline TIFF with 3 samples of 8 bits per pixel and
    the given PhotometricInterpretation (1: BlackIsZero, as CVC-ClinicDB's
    frames), tags written by hand."""
    import struct

    height, width, samples = pixels.shape
    data = np.ascontiguousarray(pixels).tobytes()
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, samples, None),
            (259, 3, 1, 1), (262, 3, 1, photometric), (273, 4, 1, None),
            (277, 3, 1, samples), (278, 3, 1, height),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd_size = 2 + 12 * len(tags) + 4
    bits_at = 8 + ifd_size
    data_at = bits_at + 2 * samples
    magic = b"II*\x00" if byte_order == "<" else b"MM\x00*"
    out = magic + struct.pack(byte_order + "I", 8)
    out += struct.pack(byte_order + "H", len(tags))
    for tag, kind, count, value in tags:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = data_at
        if kind == 3 and count == 1:
            out += struct.pack(byte_order + "HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack(byte_order + "HHII", tag, kind, count, value)
    out += struct.pack(byte_order + "I", 0)
    out += struct.pack(byte_order + "H" * samples, *([8] * samples))
    return out + data


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_three_sample_black_is_zero_tiff_reads_as_rgb(tmp_path, rgb, byte_order):
    image, mask = rgb
    path = tmp_path / "frame.tif"
    path.write_bytes(three_sample_tiff(image, byte_order=byte_order))
    np.testing.assert_array_equal(read_image(path), image)
    assert image_size(path) == image.shape[:2]
    # The same layout as a mask (CVC-ClinicDB's ground truth is TIFF too).
    mask_path = tmp_path / "mask.tif"
    mask_path.write_bytes(three_sample_tiff(
        np.repeat(mask[..., None].astype(np.uint8) * 255, 3, -1),
        byte_order=byte_order))
    np.testing.assert_array_equal(read_mask(mask_path), mask)


def test_undecodable_tiff_names_its_layout(tmp_path, rgb):
    path = tmp_path / "odd.tif"
    path.write_bytes(three_sample_tiff(rgb[0], photometric=0))  # WhiteIsZero
    with pytest.raises(ImageReadError, match="PhotometricInterpretation=0") as info:
        read_image(path)
    assert "corrupt header" not in str(info.value)


def test_jpeg_with_zeroed_scan_bytes_is_an_error(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    scan = data.find(b"\xff\xda")
    middle = (scan + len(data)) // 2
    data[middle:middle + 64] = b"\x00" * 64
    path = tmp_path / "zeroed.jpg"
    path.write_bytes(bytes(data))
    Image.open(path).load()                  # Pillow alone says nothing
    with pytest.raises(ImageReadError, match="zero bytes"):
        read_image(path)
    (tmp_path / "ok.jpg").write_bytes(buffer.getvalue())
    assert read_image(tmp_path / "ok.jpg").shape == (64, 64, 3)
