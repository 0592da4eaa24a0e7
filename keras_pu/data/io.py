"""Reading images and binary masks from disk with Pillow.

Every file format Pillow reads is accepted. What the readers do with the
less common pixel formats, so that nothing is silently damaged:

- RGB, grayscale (`L`), bilevel (`1`), palette (`P`/`PA`), CMYK, YCbCr, LAB,
  HSV: converted to RGB (or to grayscale for `channels=1`) by Pillow.
- Alpha (`RGBA`, `LA`, `PA`, palette transparency): **composited on black**
  (a transparent pixel becomes black, a half-transparent one is darkened),
  so transparent background never shows the arbitrary colour stored under
  it. For masks this makes transparent pixels background.
- 16- and 32-bit integer images (`I;16`, `I;16B`, `I`) and float images
  (`F`): scaled to 8 bits. `high_bit_depth="range"` (default) maps 0..max
  of the image to 0..255 (an image whose values already fit in 0..255 is
  left as it is), so 12-bit data stored in 16-bit files is not nearly
  black; `"full"` divides by 257 (65535 -> 255), for files that use the
  whole 16-bit range and must keep absolute intensities.
- EXIF orientation is applied (`ImageOps.exif_transpose`), so the pixels
  are upright as a photo viewer shows them.

- TIFFs with three samples per pixel tagged BlackIsZero (CVC-ClinicDB's
  frames), which Pillow refuses, are read as RGB (`file_quirks`).
- Masks: any non-zero label of a lossless mask is foreground; JPEG masks
  are thresholded at 127, and ambiguous ones are refused (`read_mask`).

A file that cannot be read (missing, empty, not an image, truncated,
corrupt, a JPEG whose scan data holds a run of zero bytes) raises
`ImageReadError`, which names the file and the cause. Truncated files are
errors: Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is left False. Any
exception Pillow raises on malformed bytes becomes an `ImageReadError`
(checked by the fuzz tests, tests/test_reader_fuzz.py).
"""

import io
import os
import struct
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from keras_pu.data import file_quirks

HIGH_BIT_DEPTH_MODES = ("range", "full")

# EXIF orientations 5-8 swap width and height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 0x0112


class ImageReadError(ValueError):
    """A file could not be read as an image.

    Attributes:
        path: the file.
        cause: what went wrong, in words.
    """

    def __init__(self, path, cause):
        self.path = str(path)
        self.cause = str(cause)
        super().__init__(f"cannot read image '{self.path}': {self.cause}")


# What Pillow raises, besides OSError, on malformed bytes (found by the
# fuzz tests in tests/test_reader_fuzz.py): all become ImageReadError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                  IndexError, KeyError, TypeError, ZeroDivisionError,
                  OverflowError, MemoryError, Image.DecompressionBombError)


def _open(path):
    """Opens `path` lazily (header only); raises ImageReadError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(path, "no such file")
    if os.path.isdir(path):
        raise ImageReadError(path, "is a directory, not an image file")
    if os.path.getsize(path) == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # A decompression bomb warning is a size fact, not an error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                return Image.open(path)
            except UnidentifiedImageError:
                return _open_tiff_quirk(path)
    except Image.DecompressionBombError as e:
        raise ImageReadError(
            path,
            f"{e}; if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS",
        ) from None
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, str(e) or type(e).__name__) from None


def _open_tiff_quirk(path):
    """A TIFF Pillow refused: 3-sample BlackIsZero files (CVC-ClinicDB) are
    read as RGB; any other TIFF is named with its pixel layout."""
    with open(path, "rb") as f:
        data = f.read()
    layout = file_quirks.tiff_layout(data)
    if layout is None:
        raise ImageReadError(
            path, "not an image format Pillow recognises (corrupt header?)"
        )
    patched = file_quirks.three_sample_grayscale_as_rgb(data)
    if patched is not None:
        try:
            return Image.open(io.BytesIO(patched), formats=["TIFF"])
        except UnidentifiedImageError:
            pass
    raise ImageReadError(
        path,
        "a TIFF whose pixel layout Pillow cannot decode "
        f"(PhotometricInterpretation={layout['photometric']}, "
        f"SamplesPerPixel={layout['samples_per_pixel']}, "
        f"BitsPerSample={layout['bits_per_sample']}); convert it to PNG",
    )


def _header_orientation(img):
    """EXIF orientation without decoding pixels (1 when absent/broken)."""
    try:
        if img.format == "PNG":
            # PngImageFile.getexif() decodes the whole image to find a late
            # eXIf chunk; an early one is already in the header info.
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        return exif.get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not hide the size
        return 1


def image_size(path):
    """(height, width) of the upright image, from the file header only.

    No pixel data is decoded, so this is cheap for large files. EXIF
    orientations that rotate by 90 degrees swap the two.

    Raises:
        ImageReadError: the file is missing or its header is unreadable.
    """
    with _open(path) as img:
        width, height = img.size
        orientation = _header_orientation(img)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return height, width


def _decode(path, draft_size=None):
    """Fully decodes `path`; returns (upright PIL image, file format).

    `draft_size` (a side length) lets JPEG decode at 1/2, 1/4 or 1/8 scale
    while both sides stay >= draft_size: several times faster for photos
    much larger than the size they are resized to."""
    img = _open(path)
    try:
        if img.format == "JPEG":
            _check_jpeg_scan(path)
        if draft_size and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        file_format = img.format
        transposed = ImageOps.exif_transpose(img)
        if transposed is not img:
            img.close()
        return transposed, file_format
    except ImageReadError:
        img.close()
        raise
    except _DECODE_ERRORS as e:
        img.close()
        cause = str(e) or type(e).__name__
        if "truncated" in cause:
            cause = f"{cause} (the file is incomplete: download it again)"
        raise ImageReadError(path, f"decoding failed: {cause}") from None


def _check_jpeg_scan(path):
    with open(path, "rb") as f:
        run = file_quirks.zeroed_jpeg_scan(f.read())
    if run:
        raise ImageReadError(
            path,
            f"damaged JPEG: its image data holds a run of {run} zero bytes "
            "(a disk or transfer error); Pillow would decode it silently "
            "into wrong pixels. Download or copy the file again",
        )


def _to_8bit(img, high_bit_depth):
    """Integer/float modes beyond 8 bits -> mode L."""
    array = np.asarray(img)
    if array.dtype == np.uint8:
        return Image.fromarray(array, "L")
    array = array.astype(np.float64)
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    array = np.clip(array, 0, None)
    if high_bit_depth == "full":
        scale = 65535.0 / 255.0 if img.mode != "F" else 1.0 / 255.0
        array = array / scale
    else:
        peak = array.max()
        if peak > 255:
            array = array * (255.0 / peak)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")


def _flatten(img, high_bit_depth):
    """Any Pillow mode -> "L" or "RGB", alpha composited on black."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_8bit(img, high_bit_depth)
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        if img.mode in ("RGBa", "La"):  # premultiplied: already on black
            return img.convert("RGB" if img.mode == "RGBa" else "L")
        array = np.asarray(img).astype(np.float32)
        alpha = array[..., -1:] / 255.0
        rgb = np.rint(array[..., :-1] * alpha).astype(np.uint8)
        if rgb.shape[-1] == 1:
            return Image.fromarray(rgb[..., 0], "L")
        return Image.fromarray(rgb, "RGB")
    if img.mode in ("L", "RGB"):
        return img
    if img.mode == "1":
        return img.convert("L")
    # CMYK, YCbCr, LAB, HSV, I;16 variants Pillow converts itself.
    return img.convert("RGB")


def verify_image(path):
    """Checks that `path` decodes completely, and for PNG that every chunk
    checksum (CRC) is right, which also catches damage a decoder may not
    notice. Raises `ImageReadError` naming the file."""
    img, file_format = _decode(path)
    img.close()
    if file_format == "PNG":
        with _open(path) as img:
            try:
                img.verify()
            except Exception as e:  # Pillow raises SyntaxError/OSError here
                raise ImageReadError(
                    path, f"damaged PNG ({e or type(e).__name__})"
                ) from None


def _check_size(size, caller):
    if size is None:
        return None
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{caller}: size must be (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{caller}: size must be positive, got {size!r}")
    return height, width


def read_image(path, channels=3, high_bit_depth="range", size=None):
    """Reads an image file as uint8 pixels, upright.

    Args:
        path: the image file.
        channels: 3 (RGB; grayscale is replicated to three channels) or 1
            (grayscale; colour is converted with ITU-R 601-2 luma). Default 3:
            keras-pu models take RGB.
        high_bit_depth: how 16-bit and float images become 8-bit: `"range"`
            (default: scale the image's 0..max to 0..255; images whose
            values fit in 0..255 are unchanged) or `"full"` (divide by 257,
            i.e. the whole 16-bit range maps to 0..255).
        size: optional `(height, width)` to resize to, with bilinear
            (antialiased) filtering. Large JPEGs are then decoded at a
            reduced scale first (never below `size`), which is much faster.

    Returns:
        np.ndarray of dtype uint8 and shape (H, W, channels) (or `size`).
        Alpha is composited on black.

    Raises:
        ImageReadError: missing, empty, not an image, truncated or corrupt
            file; the message names the file.

    Example:
    >>> image = read_image("Kvasir-SEG/images/cju0qkwl35piu0993l0dewei2.jpg")
    >>> image.shape, image.dtype
    ((529, 622, 3), dtype('uint8'))
    """
    if channels not in (1, 3):
        raise ValueError(f"read_image: channels must be 1 or 3, got {channels!r}")
    if high_bit_depth not in HIGH_BIT_DEPTH_MODES:
        raise ValueError(
            f"read_image: high_bit_depth must be one of {HIGH_BIT_DEPTH_MODES}, "
            f"got {high_bit_depth!r}"
        )
    size = _check_size(size, "read_image")
    array, _ = _read_array(path, channels, high_bit_depth, size, Image.BILINEAR)
    if channels == 1:
        return array[..., None]
    return array


def _read_array(path, channels, high_bit_depth, size=None, resample=None):
    """(uint8 array (H, W) or (H, W, 3), file format name)."""
    img, file_format = _decode(path, max(size) if size else None)
    try:
        flat = _flatten(img, high_bit_depth)
        if size is not None and flat.size != (size[1], size[0]):
            flat = flat.resize((size[1], size[0]), resample)
        flat = flat.convert("L" if channels == 1 else "RGB")
        array = np.asarray(flat, dtype=np.uint8)
    finally:
        img.close()
    if array.size == 0:
        raise ImageReadError(path, "the image has no pixels (zero width or height)")
    return array, file_format


# Foreground rule of `read_mask` (see its docstring).
# A lossless mask with more distinct non-zero levels than this looks like a
# soft (anti-aliased, resampled or probability) mask, not a label map.
MAX_LABELS = 16
# JPEG noise around 0 in real masks stays below this (Kvasir-SEG: <= 8);
# a JPEG mask whose brightest pixel lies in (JPEG_NOISE_LEVEL, threshold]
# is ambiguous: labels 1, 2, ... blurred by compression, or noise.
JPEG_NOISE_LEVEL = 32
# JPEG masks with more of their pixels in the uncertain middle band
# (JPEG_NOISE_LEVEL..255-JPEG_NOISE_LEVEL) than this fraction are
# anti-aliased or not binary; the threshold then decides the edges.
JPEG_MIDDLE_FRACTION = 0.05


class MaskWarning(UserWarning):
    """A mask was read by a rule that may not be what its author meant."""


def read_mask(paths, threshold=None, high_bit_depth="range", size=None):
    """Reads one binary mask from one or several files (merged by OR).

    The foreground rule (`threshold=None`, the default):

    - **Lossless files** (PNG, TIFF, BMP, ...): a mask is a label map, and
      **any non-zero pixel is foreground**: {0, 1}, {0, 2}, {0, 255} and
      {0, 1, 2, 128, 200} all read their non-zero pixels as lesion. Colour
      masks count a pixel as non-zero when any channel is; alpha is
      composited on black (transparent is background); 16-bit and float
      values are compared before any scaling, so label 1 in a 16-bit file
      is not lost. A mask with more than `MAX_LABELS` (16) distinct
      non-zero levels is soft (anti-aliased, resampled or a probability
      map): it is still read by the non-zero rule, with a `MaskWarning`
      saying so and how to threshold it instead.
    - **JPEG files** (lossy, e.g. Kvasir-SEG's, whose values lie in 0..8
      and 246..255): a pixel is foreground above the grey level 127
      (compression noise makes "non-zero" meaningless). A JPEG mask whose
      brightest pixel lies between 32 and 127 is ambiguous (labels 1, 2, ...
      blurred by compression, or a faint mask) and raises `ImageReadError`:
      store such masks losslessly (PNG) or pass `threshold`. A JPEG mask
      with more than 5 % of its pixels in the uncertain middle band (32..223)
      gets a `MaskWarning`.

    An explicit `threshold` applies one rule to every file: foreground when
    the 8-bit grey level (luma; 16-bit scaled as in `read_image`) is above
    it. If that leaves a mask empty while it has non-zero pixels, a
    `MaskWarning` says so: an empty mask is never produced silently.

    Args:
        paths: a mask file, or a sequence of files of the same size (e.g.
            BUSI's `_mask`, `_mask_1`, `_mask_2` of one image).
        threshold: `None` (default: the rule above) or a grey level
            (0..254) above which a pixel is foreground.
        high_bit_depth: as in `read_image` (used with an explicit
            `threshold`).
        size: optional `(height, width)`: the merged mask is resized to it
            with nearest-neighbour sampling (it stays binary).

    Returns:
        np.ndarray of dtype bool and shape (H, W) (or `size`).

    Raises:
        ImageReadError: a file is unreadable, or an ambiguous JPEG mask;
            ValueError: no paths, or the files differ in size (the message
            names them).

    Example:
    >>> mask = read_mask(["benign (4)_mask.png", "benign (4)_mask_1.png"])
    >>> mask.dtype, mask.ndim
    (dtype('bool'), 2)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("read_mask: no mask file given")
    if threshold is not None and not 0 <= threshold < 255:
        raise ValueError(
            f"read_mask: threshold must be None or in 0..254, got {threshold!r}"
        )
    size = _check_size(size, "read_mask")
    merged = None
    for path in paths:
        mask = _read_one_mask(path, threshold, high_bit_depth, size)
        if size is not None and mask.shape != size:
            resized = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(
                (size[1], size[0]), Image.NEAREST
            )
            mask = np.asarray(resized) > 127
        if merged is None:
            merged, first = mask, path
        elif merged.shape != mask.shape:
            raise ValueError(
                f"read_mask: mask files of one image differ in size: '{first}' "
                f"is {merged.shape[1]}x{merged.shape[0]}, '{path}' is "
                f"{mask.shape[1]}x{mask.shape[0]} (width x height); fix or "
                "remove the wrong file"
            )
        else:
            merged |= mask
    return merged


def _read_one_mask(path, threshold, high_bit_depth, size):
    """One mask file -> bool array at native size (JPEG: maybe draft scale)."""
    # JPEG masks may decode at reduced scale (draft) when resized anyway.
    img, file_format = _decode(path, max(size) if size else None)
    try:
        if threshold is not None:
            gray = _flatten(img, high_bit_depth).convert("L")
            levels = np.asarray(gray, dtype=np.uint8)
            _check_pixels(path, levels)
            mask = levels > threshold
            if not mask.any() and levels.any():
                warnings.warn(
                    f"mask '{path}': no pixel is above threshold {threshold} "
                    f"(brightest {int(levels.max())}), so it is read as "
                    "empty; pass threshold=None to read it as a label map",
                    MaskWarning,
                    stacklevel=3,
                )
            return mask
        if file_format == "JPEG":
            levels = np.asarray(
                _flatten(img, high_bit_depth).convert("L"), dtype=np.uint8
            )
            _check_pixels(path, levels)
            return _jpeg_foreground(path, levels)
        levels = _mask_levels(img)
        _check_pixels(path, levels)
        mask = levels > 0
        labels = np.unique(levels[mask])
        if labels.size > MAX_LABELS:
            warnings.warn(
                f"mask '{path}' has {labels.size} distinct non-zero levels: "
                "it looks soft (anti-aliased, resized or a probability map), "
                "not a label map; every non-zero pixel is read as foreground. "
                "To binarise at a grey level instead, pass threshold "
                "(e.g. read_mask(path, threshold=127)), or save the mask "
                "with two values",
                MaskWarning,
                stacklevel=3,
            )
        return mask
    finally:
        img.close()


def _check_pixels(path, levels):
    if levels.size == 0:
        raise ImageReadError(path, "the image has no pixels (zero width or height)")


def _mask_levels(img):
    """Per-pixel level of a lossless mask, in the file's own scale: zero
    exactly where the pixel is background (black or transparent)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(img).astype(np.float64)
        return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0).clip(0)
    flat = _flatten(img, "range")
    array = np.asarray(flat)
    if array.ndim == 3:  # colour: non-zero when any channel is
        array = array.max(axis=-1)
    return array


def _jpeg_foreground(path, levels):
    """Threshold a lossy (JPEG) mask at 127, refusing the ambiguous ones."""
    brightest = int(levels.max())
    if JPEG_NOISE_LEVEL < brightest <= 127:
        raise ImageReadError(
            path,
            f"ambiguous JPEG mask: its brightest pixel is {brightest}, "
            "between compression noise and the foreground level (> 127), "
            "so labels stored as small values (1, 2, ...) cannot be told "
            "from noise. Store the mask losslessly (PNG, values 0 and 255) "
            "or give an explicit threshold",
        )
    middle = (levels > JPEG_NOISE_LEVEL) & (levels < 255 - JPEG_NOISE_LEVEL)
    fraction = float(middle.mean())
    if fraction > JPEG_MIDDLE_FRACTION:
        warnings.warn(
            f"JPEG mask '{path}': {fraction:.1%} of its pixels are neither "
            "near black nor near white (anti-aliased or not binary); they "
            "are split at grey level 127",
            MaskWarning,
            stacklevel=4,
        )
    return levels > 127
