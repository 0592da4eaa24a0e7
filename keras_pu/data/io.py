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

A file that cannot be read (missing, empty, not an image, truncated,
corrupt) raises `ImageReadError`, which names the file and the cause.
Truncated files are errors: Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is
left False.
"""

import os
import warnings

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

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
            return Image.open(path)
    except UnidentifiedImageError:
        raise ImageReadError(
            path, "not an image format Pillow recognises (corrupt header?)"
        ) from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(
            path,
            f"{e}; if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS",
        ) from None
    except OSError as e:
        raise ImageReadError(path, e) from None


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
        if draft_size and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        file_format = img.format
        transposed = ImageOps.exif_transpose(img)
        if transposed is not img:
            img.close()
        return transposed, file_format
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        img.close()
        cause = str(e) or type(e).__name__
        if "truncated" in cause:
            cause = f"{cause} (the file is incomplete: download it again)"
        raise ImageReadError(path, f"decoding failed: {cause}") from None


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


def read_mask(paths, threshold=127, high_bit_depth="range", size=None):
    """Reads one binary mask from one or several files (merged by OR).

    Each file is read as grayscale (colour through luma, alpha composited on
    black, 16-bit scaled as in `read_image`). A losslessly stored file (not
    JPEG) whose values are all 0 or 1 is a label map: 1 is foreground. Otherwise a pixel is foreground
    when its value is above `threshold`, which also cleans the compression
    noise of lossy JPEG masks (Kvasir-SEG's lie in 0..8 and 246..255).

    Args:
        paths: a mask file, or a sequence of files of the same size (e.g.
            BUSI's `_mask`, `_mask_1`, `_mask_2` of one image).
        threshold: grey level (0..254) above which a pixel is foreground.
            Default 127.
        high_bit_depth: as in `read_image`.
        size: optional `(height, width)`: the merged mask is resized to it
            with nearest-neighbour sampling (it stays binary).

    Returns:
        np.ndarray of dtype bool and shape (H, W) (or `size`).

    Raises:
        ImageReadError: a file is unreadable; ValueError: no paths, or the
            files differ in size (the message names them).

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
    if not 0 <= threshold < 255:
        raise ValueError(f"read_mask: threshold must be in 0..254, got {threshold!r}")
    size = _check_size(size, "read_mask")
    merged = None
    for path in paths:
        # JPEG masks may decode at reduced scale (draft) when resized anyway.
        gray, file_format = _read_array_for_mask(path, high_bit_depth, size)
        if gray.max() <= 1 and file_format != "JPEG":
            mask = gray == 1
        else:
            mask = gray > threshold
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


def _read_array_for_mask(path, high_bit_depth, size):
    """Grayscale mask pixels at native size (or JPEG draft scale >= size)."""
    img, file_format = _decode(path, max(size) if size else None)
    try:
        flat = _flatten(img, high_bit_depth).convert("L")
        array = np.asarray(flat, dtype=np.uint8)
    finally:
        img.close()
    if array.size == 0:
        raise ImageReadError(path, "the image has no pixels (zero width or height)")
    return array, file_format
