"""Kvasir-SEG: polyp segmentation in colonoscopy images.

Layout: `images/<id>.jpg` and `masks/<id>.jpg` (the same file names; the
masks are lossy JPEGs, thresholded when read).
"""

from keras_pu.data.scanning import DatasetSpec
from keras_pu.data.scanning import pair_by_stem
from keras_pu.data.scanning import require_dir

KEY = "kvasir-seg"


def scan(root, subset):
    require_dir(root / "images", KEY, "the images")
    require_dir(root / "masks", KEY, "the masks")
    return pair_by_stem(root / "images", root / "masks", ("",))


def detect(root, names):
    """images/ + masks/ with the official `kavsir_bboxes.json` (sic), or a
    folder named Kvasir-SEG."""
    return {"images", "masks"} <= names and (
        (root / "kavsir_bboxes.json").is_file()
        or root.name.lower().startswith("kvasir")
    )


DATASET = DatasetSpec(
    key=KEY,
    display_name="Kvasir-SEG",
    scan=scan,
    detect=detect,
    detect_order=40,
    layout_hint="images/ + masks/ (Kvasir-SEG or your own data)",
    has_split=True,
    url="https://datasets.simula.no/kvasir-seg/",
    citation='Jha D. et al., "Kvasir-SEG: A Segmented Polyp Dataset", '
    "MultiMedia Modeling (MMM) 2020.",
    licence="Kvasir-SEG may be used for research and education only; "
    "commercial use needs prior written approval from Simula.",
    # The zoo registry's key before the dataset registry gave every dataset
    # one spelling.
    aliases=("kvasir_seg",),
)
