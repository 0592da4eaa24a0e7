"""keras_pu.data.datasets: each official layout, detection, broken datasets."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_pu.data import DatasetError
from keras_pu.data import LAYOUTS
from keras_pu.data import SegmentationDataset
from keras_pu.data import detect_layout
from keras_pu.data import load_dataset
from keras_pu.data import read_image
from keras_pu.data import read_mask
from tests.dataset_factory import make_dataset
from tests.dataset_factory import make_busi
from tests.dataset_factory import make_isic2017
from tests.dataset_factory import make_kvasir


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_with_the_right_masks(tmp_path, layout):
    made = make_dataset(layout, tmp_path / layout)
    assert detect_layout(made.root) == layout
    for given in (layout, "auto"):
        dataset = load_dataset(given, made.root)
        assert isinstance(dataset, SegmentationDataset)
        assert dataset.layout == layout
        assert sorted(dataset.ids) == sorted(made.ids)
        assert len(dataset) == len(made.ids)
    for sample in dataset:
        assert sample.metadata == made.metadata[sample.id]
        mask = read_mask(sample.mask_paths)
        expected = made.masks[sample.id]
        assert mask.shape == expected.shape
        # JPEG masks (Kvasir) may move a few edge pixels.
        assert (mask != expected).mean() < 0.01, sample.id
        assert read_image(sample.image_path).shape == expected.shape + (3,)


def test_busi_merges_extra_masks_and_keeps_class(tmp_path):
    made = make_busi(tmp_path)
    dataset = load_dataset("busi", tmp_path)
    benign = dataset["benign (1)"]
    assert [p.name for p in benign.mask_paths] == [
        "benign (1)_mask.png", "benign (1)_mask_1.png", "benign (1)_mask_2.png"
    ]
    np.testing.assert_array_equal(read_mask(benign.mask_paths), made.masks["benign (1)"])
    assert len(dataset["malignant (2)"].mask_paths) == 2
    normals = [s for s in dataset if s.metadata["class"] == "normal"]
    assert len(normals) == 3
    assert not any(read_mask(s.mask_paths).any() for s in normals)
    # Both roots work: the parent of Dataset_BUSI_with_GT and the folder itself.
    inner = load_dataset("busi", tmp_path / "Dataset_BUSI_with_GT")
    assert inner.ids == dataset.ids
    # Natural order: "benign (2)" before "benign (10)" would hold; classes grouped.
    assert dataset.ids[:3] == ["benign (1)", "benign (2)", "benign (3)"]


def test_isic_subsets_and_superpixels_ignored(tmp_path):
    make_isic2017(tmp_path, subsets=("training", "validation", "test"), n=2)
    everything = load_dataset("isic2017", tmp_path)
    assert len(everything) == 6      # superpixels and LICENSE.txt ignored
    val = load_dataset("isic2017", tmp_path, subset="validation")
    assert [s.metadata["subset"] for s in val] == ["validation"] * 2
    both = load_dataset("isic2017", tmp_path, subset=["training", "test"])
    assert len(both) == 4
    with pytest.raises(ValueError, match="subset"):
        load_dataset("isic2017", tmp_path, subset="train")
    with pytest.raises(ValueError, match="no subsets"):
        load_dataset("busi", tmp_path, subset="training")


def test_isic_test_images_without_ground_truth(tmp_path):
    make_isic2017(tmp_path, subsets=("training", "test"), n=2)
    shutil.rmtree(tmp_path / "ISIC-2017_Test_v2_Part1_GroundTruth")
    with pytest.warns(UserWarning, match="ISIC-2017_Test_v2_Data"):
        dataset = load_dataset("isic2017", tmp_path)
    assert len(dataset) == 2
    with pytest.raises(DatasetError, match="ISIC-2017_Test_v2_Part1_GroundTruth"):
        load_dataset("isic2017", tmp_path, subset="test")


def test_subset_and_indexing(tmp_path):
    make_kvasir(tmp_path, n=4)
    dataset = load_dataset("kvasir-seg", tmp_path)
    ids = dataset.ids
    part = dataset.subset([ids[2], ids[0]])
    assert part.ids == [ids[2], ids[0]] and part.layout == "kvasir-seg"
    assert dataset[ids[1]] is dataset[1]
    assert ids[3] in dataset and "nope" not in dataset
    with pytest.raises(DatasetError, match="'nope'.*'other'") as info:
        dataset.subset([ids[0], "nope", "other"])
    assert "2 id(s) not in the dataset" in str(info.value)
    with pytest.raises(DatasetError, match="repeated"):
        dataset.subset([ids[0], ids[0]])
    with pytest.raises(KeyError, match="nope"):
        dataset["nope"]


def test_missing_folders_and_unknown_layouts(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("kvasir-seg", tmp_path / "absent")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="masks"):
        load_dataset("kvasir-seg", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        load_dataset("kvasir", tmp_path)
    (tmp_path / "images").rmdir()
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match="cannot recognise.*Dataset_BUSI_with_GT"):
        detect_layout(tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        load_dataset("folder", tmp_path, on_error="ignore")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_png(path):
    data = bytearray(path.read_bytes())
    data[:8] = b"\x00" * 8                 # no PNG signature: header unreadable
    path.write_bytes(bytes(data))


def _break_kvasir(root):
    """Every defect at once, on two files each where it makes sense; returns
    {problem kind: names that must appear in the error}."""
    ids = sorted(p.stem for p in (root / "images").iterdir())
    (root / "masks" / f"{ids[0]}.jpg").unlink()                     # missing mask
    (root / "masks" / f"{ids[1]}.jpg").unlink()
    Image.new("L", (10, 10)).save(root / "masks" / "orphan_a.jpg")  # extra masks
    Image.new("L", (10, 10)).save(root / "masks" / "orphan_b.png")
    Image.new("RGB", (7, 9)).save(root / "masks" / f"{ids[2]}.jpg")  # size mismatch
    (root / "images" / f"{ids[3]}.jpg").write_bytes(b"")           # empty file
    return {
        "missing mask": [f"{ids[0]}.jpg", f"{ids[1]}.jpg"],
        "extra mask": ["orphan_a.jpg", "orphan_b.png"],
        "size mismatch": [f"{ids[2]}.jpg", "7x9"],
        "unreadable": [f"{ids[3]}.jpg", "empty"],
    }, ids


def test_broken_dataset_lists_every_offending_file(tmp_path):
    make_kvasir(tmp_path, n=6)
    expected, ids = _break_kvasir(tmp_path)
    with pytest.raises(DatasetError) as info:
        load_dataset("kvasir-seg", tmp_path)
    message = str(info.value)
    for kind, names in expected.items():
        assert kind in message
        for name in names:
            assert name in message, (name, message)
    assert "on_error='skip'" in message
    assert {p.kind for p in info.value.problems} == set(expected)


def test_skip_mode_drops_bad_pairs_with_one_warning(tmp_path):
    make_kvasir(tmp_path, n=6)
    expected, ids = _break_kvasir(tmp_path)
    with pytest.warns(UserWarning) as record:
        dataset = load_dataset("kvasir-seg", tmp_path, on_error="skip")
    assert len(record) == 1
    assert all(n in str(record[0].message) for n in expected["missing mask"])
    assert dataset.ids == ids[4:]


@pytest.mark.parametrize("defect", ["truncated_jpeg", "corrupt_png"])
def test_pixel_level_corruption_found_by_decode(tmp_path, defect):
    if defect == "truncated_jpeg":
        made = make_kvasir(tmp_path, n=3)
        bad = tmp_path / "images" / f"{made.ids[1]}.jpg"
        _truncate(bad)
        layout = "kvasir-seg"
    else:
        made = make_busi(tmp_path, per_class=1)
        bad = tmp_path / "Dataset_BUSI_with_GT" / "malignant" / "malignant (1)_mask.png"
        data = bytearray(bad.read_bytes())
        data[-20] ^= 0xFF                      # flip a byte of the last IDAT chunk
        bad.write_bytes(bytes(data))
        layout = "busi"
    # Headers are intact: the quick check cannot see it ...
    load_dataset(layout, tmp_path)
    # ... the full decode does, and names the file.
    with pytest.raises(DatasetError, match=bad.name.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(layout, tmp_path, verify="decode")
    with pytest.warns(UserWarning, match="1 image"):
        kept = load_dataset(layout, tmp_path, verify="decode", on_error="skip")
    assert len(kept) == len(made.ids) - 1


def test_corrupt_png_header_found_quickly(tmp_path):
    made = make_busi(tmp_path, per_class=1)
    bad = tmp_path / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png"
    _corrupt_png(bad)
    with pytest.raises(DatasetError, match=r"unreadable.*\n.*benign \(1\)\.png"):
        load_dataset("busi", tmp_path)


def test_16_bit_and_rgba_files_load(tmp_path):
    """Unusual but valid pixel formats are read, not rejected."""
    make_kvasir(tmp_path, n=2)
    images = sorted((tmp_path / "images").iterdir())
    masks = sorted((tmp_path / "masks").iterdir())
    rgb = read_image(images[0])
    # 16-bit grayscale image, RGBA mask of the same size.
    gray16 = (np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257)
    images[0].unlink()
    Image.fromarray(gray16).save(images[0].with_suffix(".png"))
    mask = read_mask(masks[0])
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[mask] = 255
    masks[0].unlink()
    Image.fromarray(rgba, "RGBA").save(masks[0].with_suffix(".png"))
    dataset = load_dataset("kvasir-seg", tmp_path, verify="decode")
    sample = dataset[images[0].stem]
    image = read_image(sample.image_path)
    assert image.shape == rgb.shape and image.dtype == np.uint8
    # high_bit_depth="range": the image's 0..max becomes 0..255.
    expected = np.rint(gray16 * (255.0 / gray16.max()))
    assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(read_mask(sample.mask_paths), mask)


def test_folder_layout_ambiguous_masks(tmp_path):
    make_dataset("folder", tmp_path, n=2)
    Image.new("L", (45, 37)).save(tmp_path / "masks" / "case00.png")  # 2nd mask of case00
    with pytest.raises(DatasetError, match=r"ambiguous.*\n.*masks/case00\.png.*masks/case00_mask\.png"):
        load_dataset("folder", tmp_path)
