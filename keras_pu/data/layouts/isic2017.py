"""ISIC 2017 Part 1: skin-lesion segmentation in dermoscopic images.

Layout: `ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_<n>.jpg` with
`ISIC-2017_{...}_Part1_GroundTruth/ISIC_<n>_segmentation.png`
(`*_superpixels.png` files of the official release are ignored; `Test` is
accepted for `Test_v2`). `subset` picks `"training"`, `"validation"`,
`"test"` (or a list of them); `metadata["subset"]` records it.
"""

import re

from keras_pu.data.layouts._isic import ISIC_SUBSETS
from keras_pu.data.layouts._isic import scan_isic
from keras_pu.data.scanning import DatasetSpec

KEY = "isic2017"
# subset -> (input folder, ground-truth folder) candidates, first match wins.
FOLDERS = {
    "training": [("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth")],
    "validation": [("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth")],
    "test": [
        ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
        ("ISIC-2017_Test_Data", "ISIC-2017_Test_Part1_GroundTruth"),
    ],
}


def scan(root, subset):
    return scan_isic(KEY, FOLDERS, root, subset)


def detect(root, names):
    return any(re.fullmatch(r"ISIC-2017_\w+_Data", n) for n in names)


DATASET = DatasetSpec(
    key=KEY,
    display_name="ISIC 2017 Part 1",
    scan=scan,
    detect=detect,
    detect_order=30,
    layout_hint="ISIC-2017_*_Data/ (ISIC 2017)",
    subsets=ISIC_SUBSETS,
    has_split=True,
    url="https://challenge.isic-archive.com/data/#2017",
    citation='Codella N.C.F. et al., "Skin Lesion Analysis Toward Melanoma '
    "Detection: A Challenge at the 2017 International Symposium on "
    "Biomedical Imaging (ISBI), Hosted by the International Skin Imaging "
    'Collaboration (ISIC)", ISBI 2018, arXiv:1710.05006.',
    licence="ISIC challenge data is distributed under CC BY-NC 4.0 "
    "(attribution, non-commercial); some individual ISIC Archive images are "
    "CC-0.",
)
