"""Your own data: `images/` and `masks/`.

A mask matches an image by file stem, with any image extension and an
optional `_mask` or `_segmentation` suffix (`images/a.png` <- `masks/a.png`,
`masks/a.tif`, `masks/a_mask.png` or `masks/a_segmentation.png`).
"""

from keras_pu.data.scanning import DatasetSpec
from keras_pu.data.scanning import pair_by_stem
from keras_pu.data.scanning import require_dir

KEY = "folder"
FOLDER_MASK_SUFFIXES = ("", "_mask", "_segmentation")


def scan(root, subset):
    require_dir(root / "images", KEY, "the images")
    require_dir(root / "masks", KEY, "the masks")
    return pair_by_stem(root / "images", root / "masks", FOLDER_MASK_SUFFIXES)


def detect(root, names):
    return {"images", "masks"} <= names


DATASET = DatasetSpec(
    key=KEY,
    # A folder of the user's own is named after itself (load_dataset).
    display_name="",
    scan=scan,
    detect=detect,
    # Last: any images/ + masks/ folder that no named dataset claims.
    detect_order=90,
    # kvasir-seg's hint ("images/ + masks/ (Kvasir-SEG or your own data)")
    # covers this layout in error messages.
    layout_hint="",
)
