#!/usr/bin/env python
"""Makes the committed train/val/test split files of keras-pu,
`keras_pu/data/splits/{kvasir-seg,busi,isic2017}.json`.

    pip install -e ".[dev]"          # imagehash, for this script only
    python scripts/make_splits.py [--data DIR] [--check] [DATASET ...]

Deterministic: the same dataset files and seed give byte-identical files
(`--check` verifies that the committed files are up to date).

Rules:

1. Near-duplicates stay together. Every image is hashed with the
   perceptual hash (`imagehash.phash`, hash_size 16 = 256 bits) of its
   pixels as stored. Two images whose hashes differ in at most
   `max_distance` bits are linked; linked images form a group (connected
   components), and a group is never split. The threshold of each dataset
   sits where its distribution of pair distances turns from the few
   near-duplicates into the mass of unrelated pairs (checked by eye on
   image pairs on both sides): Kvasir-SEG 40 (no pair between 20 and 42),
   BUSI 72 (near-duplicates of the same lesion, annotated or not, reach
   ~60; unrelated pairs start at ~85), ISIC 2017 46 (the same lesion
   photographed twice reaches ~46; unrelated pairs start at ~40, so a few
   unrelated images are grouped too, which costs nothing). On top of the
   hash, the pairs named in each dataset's SOURCE.md are linked explicitly
   (Kvasir-SEG's three near-identical pairs, BUSI's listed pairs, ISIC
   2017's listed pairs), so they end up together whatever the hash says.
2. Groups are visited in a seeded random order; each goes to the split
   furthest behind its per-class quota (proportion x class count),
   relative to that quota. For BUSI the classes are
   benign/malignant/normal (stratified; normal images in every split); a
   group spanning classes counts each member in its class. BUSI's
   byte-identical benign (433) / malignant (145), which carry different
   labels, are one group, hence in one split.
3. Proportions: Kvasir-SEG and BUSI 70/10/20 (train/val/test).
   ISIC 2017: test = the official validation set (150 images; this copy
   has no test masks); train/val = the official training set, 90/10, with
   every training image that is grouped with a validation image removed
   (it would leak into our test split): the byte-identical training
   ISIC_0012970 (= validation ISIC_0012127) and any hash near-duplicate.
   Removed ids are listed under "excluded" with the reason.

Each file records: script, seed, hash library/size/threshold, proportions,
the sha256 of the dataset's MANIFEST.sha256, counts per split (and class),
the multi-image groups with their split, and the excluded ids.
"""

import argparse
import hashlib
import json
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 20240611
HASH_SIZE = 16
OUT = ROOT / "keras_pu" / "data" / "splits"

CONFIGS = {
    "kvasir-seg": dict(
        folder="Kvasir-SEG", max_distance=40,
        proportions={"train": 0.7, "val": 0.1, "test": 0.2},
        known_groups=[  # SOURCE.md: three near-identical pairs
            ["cju30bmab08bi0835mvlr6e0r", "cju77k828z46w0871r0avuoo9"],
            ["cju76lsehyia10987u54vn8rb", "cju772304yw5t0818vbw8kkjf"],
            ["cju886ryxnsl50801r93jai7q", "cju8amfdtqi4x09871tygrgqe"],
        ],
    ),
    "busi": dict(
        folder="BUSI", max_distance=72,
        proportions={"train": 0.7, "val": 0.1, "test": 0.2},
        known_groups=[  # SOURCE.md: exact cross-class duplicate, closest pairs
            ["benign (433)", "malignant (145)"],
            ["benign (233)", "benign (299)"], ["malignant (18)", "malignant (116)"],
            ["normal (51)", "normal (54)"], ["normal (55)", "normal (68)"],
            ["benign (284)", "benign (285)"], ["benign (3)", "benign (320)"],
            ["benign (131)", "malignant (51)"], ["benign (399)", "malignant (93)"],
        ],
    ),
    "isic2017": dict(
        folder="ISIC2017", max_distance=46,
        proportions={"train": 0.9, "val": 0.1},
        known_groups=[  # SOURCE.md: cross-split duplicate, training near-duplicates
            ["ISIC_0012970", "ISIC_0012127"],
            ["ISIC_0012290", "ISIC_0013594"], ["ISIC_0012672", "ISIC_0012673"],
            ["ISIC_0013314", "ISIC_0013831"], ["ISIC_0013879", "ISIC_0013970"],
        ],
    ),
}


def phashes(dataset):
    import imagehash
    from PIL import Image

    from keras_pu.data.io import read_image

    bits = []
    for sample in dataset:
        image = Image.fromarray(read_image(sample.image_path))
        bits.append(np.asarray(imagehash.phash(image, hash_size=HASH_SIZE).hash).ravel())
    return np.array(bits, dtype=bool)


def group(ids, distances, max_distance, known_groups):
    """Connected components of 'distance <= max_distance' plus known pairs.
    Returns (list of groups as sorted index lists, reason per linked pair)."""
    index = {sample_id: i for i, sample_id in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = {}
    for i, j in zip(*np.nonzero(np.triu(distances <= max_distance, 1))):
        parent[find(i)] = find(j)
        links[(int(i), int(j))] = f"phash distance {int(distances[i, j])}"
    for known in known_groups:
        missing = [k for k in known if k not in index]
        if missing:
            raise SystemExit(f"known group {known}: ids {missing} not in the dataset")
        first = index[known[0]]
        for other in known[1:]:
            parent[find(first)] = find(index[other])
    groups = {}
    for i in range(len(ids)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def assign(groups, classes, proportions, rng):
    """Stratified assignment of groups to splits (see docstring, rule 2).

    Groups are visited in a seeded random order; each goes to the split
    that is furthest behind its quota, relative to the quota, for the
    group's classes. Every split thus fills at its own pace, and groups of
    near-duplicates land in each split in proportion."""
    names = list(proportions)
    totals = {}
    for g in groups:
        for i in g:
            totals[classes[i]] = totals.get(classes[i], 0) + 1
    quota = {s: {c: proportions[s] * n for c, n in totals.items()} for s in names}
    filled = {s: {c: 0 for c in totals} for s in names}
    split_of = {}
    for k in rng.permutation(len(groups)):
        members = groups[k]
        counts = {}
        for i in members:
            counts[classes[i]] = counts.get(classes[i], 0) + 1

        def behind(s):
            return sum(
                n * (quota[s][c] - filled[s][c]) / max(quota[s][c], 1e-9)
                for c, n in counts.items()
            )

        best = max(names, key=lambda s: (behind(s), -names.index(s)))
        for i in members:
            split_of[i] = best
        for c, n in counts.items():
            filled[best][c] += n
    return split_of


def make(name, data_dir):
    from keras_pu.data.datasets import load_dataset

    config = CONFIGS[name]
    folder = data_dir / config["folder"]
    dataset = load_dataset(name, folder, verify="decode")
    ids = dataset.ids
    print(f"{name}: {len(ids)} images, hashing ...", flush=True)
    bits = phashes(dataset)
    distances = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    np.fill_diagonal(distances, 10**6)
    groups = group(ids, distances, config["max_distance"], config["known_groups"])

    rng = np.random.default_rng(SEED)
    excluded = []
    if name == "isic2017":
        subset = {s.id: s.metadata["subset"] for s in dataset}
        fixed_test = [i for i, s in enumerate(ids) if subset[s] == "validation"]
        pool_groups = []
        for g in groups:
            val = [ids[i] for i in g if subset[ids[i]] == "validation"]
            train = [i for i in g if subset[ids[i]] == "training"]
            if val and train:
                for i in train:
                    closest = min(
                        (v for v in g if subset[ids[v]] == "validation"),
                        key=lambda v: distances[i, v],
                    )
                    same = _same_bytes(dataset[ids[i]].image_path, dataset[ids[closest]].image_path)
                    excluded.append({
                        "id": ids[i],
                        "reason": (
                            f"official training image, {'byte-identical to' if same else 'a near-duplicate of'} "
                            f"official validation {ids[closest]} (phash distance "
                            f"{int(distances[i, closest])}), which is in our test split"
                        ),
                    })
            elif train:
                pool_groups.append(train)
        classes = ["lesion"] * len(ids)
        split_of = assign(pool_groups, classes, config["proportions"], rng)
        for i in fixed_test:
            split_of[i] = "test"
    else:
        classes = [s.metadata.get("class", "lesion") for s in dataset]
        split_of = assign(groups, classes, config["proportions"], rng)

    splits = {s: [ids[i] for i in range(len(ids)) if split_of.get(i) == s]
              for s in ("train", "val", "test")}
    counts = {}
    for s, members in splits.items():
        entry = {"total": len(members)}
        if name == "busi":
            for c in ("benign", "malignant", "normal"):
                entry[c] = sum(dataset[m].metadata["class"] == c for m in members)
        counts[s] = entry
    multi = []
    for g in groups:
        if len(g) < 2:
            continue
        pairs = [
            int(distances[a, b]) for x, a in enumerate(g) for b in g[x + 1:]
        ]
        multi.append({
            "ids": [ids[i] for i in g],
            "split": sorted({split_of.get(i, "excluded") for i in g}),
            "max_phash_distance_within": max(pairs),
        })
    manifest = folder / "MANIFEST.sha256"
    record = {
        "dataset": name,
        "made_by": "scripts/make_splits.py",
        "seed": SEED,
        "perceptual_hash": {
            "library": "imagehash 4.3.2",
            "function": "phash",
            "hash_size": HASH_SIZE,
            "max_distance": config["max_distance"],
            "known_groups_from_SOURCE_md": config["known_groups"],
        },
        "proportions": config["proportions"],
        "rules": _RULES[name],
        "dataset_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "dataset_images": len(ids),
        "counts": counts,
        "groups": multi,
        "excluded": excluded,
        "splits": splits,
    }
    return record


def _same_bytes(a, b):
    return pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()


_RULES = {
    "kvasir-seg": "70/10/20 of 1000 images; near-duplicate groups kept in one split.",
    "busi": (
        "70/10/20 stratified by class (benign/malignant/normal), normal in every "
        "split; near-duplicate groups (including cross-class ones and the "
        "byte-identical benign (433) / malignant (145)) kept in one split."
    ),
    "isic2017": (
        "test = official validation (150); train/val = official training 90/10 "
        "with training images grouped with a validation image excluded; "
        "near-duplicate groups kept in one split."
    ),
}


def dump(record):
    return json.dumps(record, indent=1, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=pathlib.Path,
        default=pathlib.Path(os.environ.get("KERAS_PU_DATA", ROOT.parent / "shared" / "data")),
        help="folder holding Kvasir-SEG/, BUSI/, ISIC2017/ (default: "
        "$KERAS_PU_DATA, else ../shared/data)",
    )
    parser.add_argument("--check", action="store_true",
                        help="only check that the committed files are up to date")
    parser.add_argument("datasets", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    stale = []
    for name in args.datasets:
        record = make(name, args.data)
        path = OUT / f"{name}.json"
        text = dump(record)
        print(f"{name}: {record['counts']}, {len(record['groups'])} groups, "
              f"{len(record['excluded'])} excluded")
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date:", *stale)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
