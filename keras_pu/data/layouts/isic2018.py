"""ISIC 2018 Task 1: skin-lesion segmentation in dermoscopic images.

Layout: `ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<n>.jpg`
with `ISIC2018_Task1_{...}_GroundTruth/ISIC_<n>_segmentation.png`.
`subset` picks `"training"`, `"validation"`, `"test"` (or a list of them);
`metadata["subset"]` records it. No committed split ships for it.
"""

import re

from keras_pu.data.layouts._isic import ISIC_SUBSETS
from keras_pu.data.layouts._isic import scan_isic
from keras_pu.data.scanning import DatasetSpec

KEY = "isic2018"
FOLDERS = {
    "training": [("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth")],
    "validation": [("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth")],
    "test": [("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth")],
}


def scan(root, subset):
    return scan_isic(KEY, FOLDERS, root, subset)


def detect(root, names):
    return any(re.fullmatch(r"ISIC2018_Task1-2_\w+_Input", n) for n in names)


DATASET = DatasetSpec(
    key=KEY,
    display_name="ISIC 2018 Task 1",
    scan=scan,
    detect=detect,
    detect_order=20,
    layout_hint="ISIC2018_Task1-2_*_Input/ (ISIC 2018)",
    subsets=ISIC_SUBSETS,
    url="https://challenge.isic-archive.com/data/#2018",
    citation='Codella N. et al., "Skin Lesion Analysis Toward Melanoma '
    'Detection 2018: A Challenge Hosted by the International Skin Imaging '
    'Collaboration (ISIC)", arXiv:1902.03368.',
    licence="ISIC challenge data is distributed under CC BY-NC 4.0 "
    "(attribution, non-commercial).",
)
