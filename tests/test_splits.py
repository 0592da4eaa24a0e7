"""The committed split files and keras_pu.data.splits."""

import importlib.util
import json

import numpy as np
import pytest

from keras_pu.data import DatasetError
from keras_pu.data import SPLIT_DATASETS
from keras_pu.data import SPLITS
from keras_pu.data import apply_split
from keras_pu.data import load_dataset
from keras_pu.data import load_split
from keras_pu.data import read_split_file
from keras_pu.data.splits import split_path
from tests.conftest import REPO_ROOT
from tests.dataset_factory import make_busi

KVASIR_PAIRS = [  # SOURCE.md
    ("cju30bmab08bi0835mvlr6e0r", "cju77k828z46w0871r0avuoo9"),
    ("cju76lsehyia10987u54vn8rb", "cju772304yw5t0818vbw8kkjf"),
    ("cju886ryxnsl50801r93jai7q", "cju8amfdtqi4x09871tygrgqe"),
]


def split_of(name):
    return {i: s for s in SPLITS for i in load_split(name, s)}


@pytest.mark.parametrize("name", SPLIT_DATASETS)
def test_split_files_are_complete_records(name):
    assert split_path(name).is_file()
    record = read_split_file(name)
    assert record["made_by"] == "scripts/make_splits.py"
    assert isinstance(record["seed"], int)
    assert record["perceptual_hash"]["hash_size"] == 16
    assert record["perceptual_hash"]["max_distance"] > 0
    assert len(record["dataset_manifest_sha256"]) == 64
    ids = [i for s in SPLITS for i in record["splits"][s]]
    assert len(ids) == len(set(ids)), "splits overlap"
    assert all(record["splits"][s] for s in SPLITS)
    excluded = {e["id"] for e in record["excluded"]}
    assert not excluded & set(ids)
    assert all(e["reason"] for e in record["excluded"])
    assert len(ids) + len(excluded) == record["dataset_images"]
    for s in SPLITS:
        assert record["counts"][s]["total"] == len(record["splits"][s])
    # Every near-duplicate group sits in one split (or is excluded).
    where = split_of(name)
    for group in record["groups"]:
        assert len({where[i] for i in group["ids"] if i in where}) == 1, group


def test_kvasir_proportions_and_known_pairs():
    where = split_of("kvasir-seg")
    assert [len(load_split("kvasir-seg", s)) for s in SPLITS] == [700, 100, 200]
    for a, b in KVASIR_PAIRS:
        assert where[a] == where[b]


def test_busi_stratified_with_normal_everywhere():
    where = split_of("busi")
    for s in SPLITS:
        classes = [i.split(" (")[0] for i in load_split("busi", s)]
        for c, total in (("benign", 437), ("malignant", 210), ("normal", 133)):
            share = classes.count(c) / total
            assert abs(share - {"train": 0.7, "val": 0.1, "test": 0.2}[s]) < 0.03, (s, c)
        assert classes.count("normal") >= 10
    assert where["benign (433)"] == where["malignant (145)"]


def test_isic2017_test_is_official_validation_and_duplicate_dropped():
    record = read_split_file("isic2017")
    test = load_split("isic2017", "test")
    assert len(test) == 150 and "ISIC_0012127" in test
    excluded = {e["id"]: e["reason"] for e in record["excluded"]}
    assert "ISIC_0012970" in excluded and "byte-identical" in excluded["ISIC_0012970"]
    assert "ISIC_0012970" not in split_of("isic2017")
    assert len(load_split("isic2017", "train")) + len(load_split("isic2017", "val")) == 2000 - len(excluded)


def test_load_split_errors():
    with pytest.raises(ValueError, match="no committed split for 'folder'"):
        load_split("folder", "train")
    with pytest.raises(ValueError, match="'training' is not in"):
        load_split("busi", "training")
    with pytest.raises(ValueError, match="does not exist"):
        load_split("/nowhere/split.json", "train")


def test_apply_split_on_a_dataset_and_a_custom_file(tmp_path):
    make_busi(tmp_path / "busi")
    dataset = load_dataset("busi", tmp_path / "busi")
    # The committed BUSI split names 780 ids: this tiny copy lacks most.
    with pytest.raises(DatasetError, match=r"\d+ of the \d+ ids of the 'test' split .*are not in the dataset: '(benign|malignant|normal) \(\d+\)'"):
        apply_split(dataset, "test")
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"splits": {"train": ["normal (1)", "benign (2)"], "test": ["benign (1)"]}}))
    train = apply_split(dataset, "train", name=custom)
    assert train.ids == ["normal (1)", "benign (2)"] and train.name == "BUSI (train)"
    assert load_split(custom, "test") == ["benign (1)"]


def _make_splits_module():
    spec = importlib.util.spec_from_file_location(
        "make_splits", REPO_ROOT / "scripts" / "make_splits.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_group_assignment_is_deterministic_stratified_and_keeps_groups():
    make_splits = _make_splits_module()
    rng = np.random.default_rng(0)
    classes = list(rng.choice(["a", "b", "c"], size=300, p=[0.6, 0.3, 0.1]))
    ids = list(range(300))
    groups = [ids[i:i + 3] for i in range(0, 60, 3)] + [[i] for i in range(60, 300)]
    proportions = {"train": 0.7, "val": 0.1, "test": 0.2}
    first = make_splits.assign(groups, classes, proportions, np.random.default_rng(5))
    again = make_splits.assign(groups, classes, proportions, np.random.default_rng(5))
    assert first == again
    for g in groups:
        assert len({first[i] for i in g}) == 1
    for c in "abc":
        members = [i for i in ids if classes[i] == c]
        for s, p in proportions.items():
            share = sum(first[i] == s for i in members) / len(members)
            assert abs(share - p) < 0.06, (c, s, share)
