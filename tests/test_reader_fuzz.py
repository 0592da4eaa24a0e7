"""Fuzz tests of the image and mask readers (hypothesis): PNG, JPEG, TIFF
and BMP files with bytes overwritten, zeroed, inserted or cut off must
either decode to a well-formed array or raise ImageReadError naming the
file; never another exception, a crash or a hang. Issue #17, deliverable 5.

Each example is bounded by hypothesis's deadline; the examples are
derandomized (the same on every run) so that the suite stays reproducible.
Raise FUZZ_EXAMPLES (environment) for a longer hunt:

    FUZZ_EXAMPLES=2000 python -m pytest tests/test_reader_fuzz.py -q
"""

import io
import os
import pathlib
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from PIL import Image

from keras_pu.data import ImageReadError
from keras_pu.data import image_size
from keras_pu.data import read_image
from keras_pu.data import read_mask
from tests.test_data_io import three_sample_tiff

# Figures quoted in docs/guarantees.md: keep them in step.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 60))
DEADLINE_MS = 2000
HEIGHT, WIDTH = 12, 16


def _seed_files():
    """{name: (suffix, bytes, pixels or None)}: small valid files of every
    format (pixels: what a lossless file must decode to)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[3:9, 4:12] = 2
    files = {}

    def encode(name, array, fmt, suffix, lossless=True, **options):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, fmt, **options)
        files[name] = (suffix, buffer.getvalue(), array if lossless else None)

    encode("png_rgb", rgb, "PNG", ".png")
    encode("png_labels", labels, "PNG", ".png")
    encode("jpeg", rgb, "JPEG", ".jpg", lossless=False, quality=90)
    encode("jpeg_progressive", rgb, "JPEG", ".jpg", lossless=False,
           quality=90, progressive=True)
    encode("tiff_raw", rgb, "TIFF", ".tif")
    encode("tiff_deflate", rgb, "TIFF", ".tif", compression="tiff_adobe_deflate")
    encode("bmp", rgb, "BMP", ".bmp")
    files["tiff_black_is_zero"] = (".tif", three_sample_tiff(rgb), rgb)
    return files


SEEDS = _seed_files()

mutation = st.one_of(
    # overwrite one byte
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True),
              st.integers(0, 255)),
    # zero a run of bytes
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True),
              st.integers(1, 64)),
    # insert random bytes
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True),
              st.binary(min_size=1, max_size=16)),
    # cut the file off
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True),
              st.just(None)),
)


def mutate(data, mutations):
    data = bytearray(data)
    for kind, where, value in mutations:
        if not data:
            break
        at = int(where * len(data))
        if kind == "set":
            data[at] = value
        elif kind == "zero":
            data[at:at + value] = bytes(len(data[at:at + value]))
        elif kind == "insert":
            data[at:at] = value
        else:
            del data[at:]
    return bytes(data)


def check_reader_contract(path, expected=None):
    """read_image / read_mask / image_size on `path`: a well-formed result
    or ImageReadError naming the file, nothing else."""
    try:
        image = read_image(path)
    except ImageReadError as e:
        assert path.name in str(e)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3
        assert image.shape[2] == 3 and image.size > 0
        if expected is not None:
            np.testing.assert_array_equal(
                image, expected if expected.ndim == 3
                else np.repeat(expected[..., None], 3, -1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MaskWarning is a legal outcome
            mask = read_mask(path)
    except ImageReadError as e:
        assert path.name in str(e)
    else:
        assert mask.dtype == bool and mask.ndim == 2 and mask.size > 0
    try:
        height, width = image_size(path)
    except ImageReadError as e:
        assert path.name in str(e)
    else:
        assert height >= 0 and width >= 0


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_unmutated_seeds_decode_exactly(tmp_path, name):
    suffix, data, pixels = SEEDS[name]
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    check_reader_contract(path, expected=pixels)
    assert read_image(path).shape == (HEIGHT, WIDTH, 3)


@settings(max_examples=FUZZ_EXAMPLES, deadline=DEADLINE_MS, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SEEDS)),
       mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_decode_or_raise_image_read_error(name, mutations):
    suffix, data, _ = SEEDS[name]
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / f"fuzz_{name}{suffix}"
        path.write_bytes(mutate(data, mutations))
        check_reader_contract(path)
