"""Tiny synthetic datasets in each official layout, for tests.

Each `make_*` writes a few images of odd sizes (a bright disk on noise) with
known masks (the disk), in the layout's official folder and file names, and
returns a `SyntheticDataset` with the expected masks. Reused by the CLI
tests: `make_dataset(layout, tmp_path)`.

    ds = make_dataset("busi", tmp_path)
    dataset = load_dataset("busi", ds.root)
    assert (read_mask(dataset["benign (2)"].mask_paths) == ds.masks["benign (2)"]).all()
"""

import dataclasses
import pathlib

import numpy as np
from PIL import Image

# Odd sizes (height, width), none a multiple of 8, some portrait.
SIZES = ((37, 45), (50, 41), (33, 60), (44, 44), (29, 52), (61, 35))


@dataclasses.dataclass
class SyntheticDataset:
    """What a factory wrote: `root` to pass to `load_dataset`, the `layout`,
    the expected boolean mask of each sample id, and per-id metadata."""

    root: pathlib.Path
    layout: str
    masks: dict
    metadata: dict

    @property
    def ids(self):
        return list(self.masks)


def disk_pair(size, seed, empty=False):
    """(uint8 RGB image (H, W, 3), bool mask (H, W)): a bright disk on noise."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius = rng.uniform(0.18, 0.3) * min(height, width)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if empty:
        mask = np.zeros_like(mask)
    image = rng.normal(70, 15, (height, width, 3)) + 120 * mask[..., None]
    image[..., 1] *= 0.8  # some colour, so RGB differs from grayscale
    return np.clip(image, 0, 255).astype(np.uint8), mask


def save_mask(mask, path, fmt=None):
    """Saves a bool mask as 0/255 (RGB for JPEG, as Kvasir-SEG does)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = mask.astype(np.uint8) * 255
    if (fmt or path.suffix.lower()) in (".jpg", ".jpeg", "JPEG"):
        Image.fromarray(np.repeat(values[..., None], 3, -1)).save(path, quality=90)
    else:
        Image.fromarray(values, "L").save(path)


def save_image(image, path, grayscale=False):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image)
    if grayscale:
        pil = pil.convert("L")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        pil.save(path, quality=92)
    else:
        pil.save(path)


def make_kvasir(root, n=4):
    """Kvasir-SEG: images/<id>.jpg + masks/<id>.jpg (lossy JPEG masks)."""
    root = pathlib.Path(root)
    masks = {}
    for i in range(n):
        sample_id = f"cju{i:04d}synthetic{i}"
        image, mask = disk_pair(SIZES[i % len(SIZES)], seed=i)
        save_image(image, root / "images" / f"{sample_id}.jpg")
        save_mask(mask, root / "masks" / f"{sample_id}.jpg")
        masks[sample_id] = mask
    (root / "kavsir_bboxes.json").write_text("{}")
    return SyntheticDataset(root, "kvasir-seg", masks, {k: {} for k in masks})


def make_busi(root, per_class=3, wrap=True):
    """BUSI: Dataset_BUSI_with_GT/{benign,malignant,normal}/ with grayscale
    PNGs, `_mask.png`, extra `_mask_1`/`_mask_2` (benign 1, malignant 2),
    empty masks for normal. `wrap=False` writes the class folders directly
    in `root`."""
    root = pathlib.Path(root)
    folder = root / "Dataset_BUSI_with_GT" if wrap else root
    masks, metadata = {}, {}
    seed = 100
    for cls in ("benign", "malignant", "normal"):
        for n in range(1, per_class + 1):
            seed += 1
            sample_id = f"{cls} ({n})"
            size = SIZES[seed % len(SIZES)]
            image, mask = disk_pair(size, seed, empty=cls == "normal")
            save_image(image, folder / cls / f"{sample_id}.png", grayscale=True)
            save_mask(mask, folder / cls / f"{sample_id}_mask.png")
            extra = {("benign", 1): 2, ("malignant", 2): 1}.get((cls, n), 0)
            for k in range(1, extra + 1):
                # A second lesion: a square in a corner.
                lesion = np.zeros(size, bool)
                if k == 1:
                    lesion[1:6, 1:6] = True
                else:
                    lesion[-6:-1, -6:-1] = True
                save_mask(lesion, folder / cls / f"{sample_id}_mask_{k}.png")
                mask = mask | lesion
            masks[sample_id] = mask
            metadata[sample_id] = {"class": cls}
    return SyntheticDataset(root, "busi", masks, metadata)


def _make_isic(root, layout, subsets, n, superpixels):
    root = pathlib.Path(root)
    masks, metadata = {}, {}
    number = 0
    for subset in subsets:
        if layout == "isic2018":
            title = subset.capitalize()
            images_dir = root / f"ISIC2018_Task1-2_{title}_Input"
            masks_dir = root / f"ISIC2018_Task1_{title}_GroundTruth"
        else:
            title = {"training": "Training", "validation": "Validation", "test": "Test_v2"}[subset]
            images_dir = root / f"ISIC-2017_{title}_Data"
            masks_dir = root / f"ISIC-2017_{title}_Part1_GroundTruth"
        for _ in range(n):
            sample_id = f"ISIC_{number:07d}"
            image, mask = disk_pair(SIZES[number % len(SIZES)], seed=200 + number)
            number += 1
            save_image(image, images_dir / f"{sample_id}.jpg")
            save_mask(mask, masks_dir / f"{sample_id}_segmentation.png")
            if superpixels:
                save_image(image, images_dir / f"{sample_id}_superpixels.png")
            masks[sample_id] = mask
            metadata[sample_id] = {"subset": subset}
        (images_dir / "LICENSE.txt").write_text("CC BY-NC 4.0")
    return SyntheticDataset(root, layout, masks, metadata)


def make_isic2018(root, subsets=("training", "validation"), n=3):
    """ISIC 2018 Task 1: ISIC2018_Task1-2_<Subset>_Input/ISIC_<n>.jpg with
    ISIC2018_Task1_<Subset>_GroundTruth/ISIC_<n>_segmentation.png."""
    return _make_isic(root, "isic2018", subsets, n, superpixels=False)


def make_isic2017(root, subsets=("training", "validation"), n=3):
    """ISIC 2017 Part 1, with the official release's *_superpixels.png."""
    return _make_isic(root, "isic2017", subsets, n, superpixels=True)


def make_folder(root, n=4):
    """Generic images/ + masks/: PNG/JPEG images, masks with `_mask` or
    `_segmentation` suffixes or none, and another extension."""
    root = pathlib.Path(root)
    masks = {}
    mask_names = ("{}_mask.png", "{}.png", "{}_segmentation.tif", "{}.bmp")
    for i in range(n):
        sample_id = f"case{i:02d}"
        image, mask = disk_pair(SIZES[i % len(SIZES)], seed=300 + i)
        save_image(image, root / "images" / f"{sample_id}{'.png' if i % 2 else '.jpg'}")
        save_mask(mask, root / "masks" / mask_names[i % len(mask_names)].format(sample_id))
        masks[sample_id] = mask
    return SyntheticDataset(root, "folder", masks, {k: {} for k in masks})


FACTORIES = {
    "kvasir-seg": make_kvasir,
    "busi": make_busi,
    "isic2018": make_isic2018,
    "isic2017": make_isic2017,
    "folder": make_folder,
}


def make_dataset(layout, root, **kwargs):
    """Writes a tiny dataset of `layout` under `root`; see FACTORIES."""
    return FACTORIES[layout](root, **kwargs)
