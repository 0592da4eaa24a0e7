"""The train/validation/test datasets of a recipe."""

import numpy as np

SPLITS = ("train", "val", "test")


def random_split_ids(ids, val_fraction, test_fraction, seed):
    """A seeded random split of `ids` for datasets without a committed split.

    Returns `{"train": [...], "val": [...], "test": [...]}` (each in the
    dataset's order). Unlike the committed splits, it does not keep
    near-duplicate images together: make a split file for data that has
    them.
    """
    ids = list(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = int(round(test_fraction * len(ids)))
    n_val = max(1, int(round(val_fraction * len(ids))))
    if n_val + n_test >= len(ids):
        raise ValueError(
            f"A dataset of {len(ids)} images is too small for "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}:"
            " no training image would be left."
        )
    test = set(order[:n_test].tolist())
    val = set(order[n_test:n_test + n_val].tolist())
    out = {"train": [], "val": [], "test": []}
    for i, sample_id in enumerate(ids):
        out["test" if i in test else "val" if i in val else "train"].append(
            sample_id
        )
    return out


def load_recipe_dataset(recipe_data, root):
    """Loads the dataset folder named by a recipe's `data` section."""
    from keras_pu.data import load_dataset

    return load_dataset(
        recipe_data["layout"], root, on_error=recipe_data["on_error"]
    )


def resolve_split_name(name, dataset):
    """The committed split a recipe's `data.split` refers to, or None for a
    seeded random split.

    `"auto"`: the committed split named after the dataset's layout (e.g.
    `"kvasir-seg"`) when one exists and the folder holds every image it
    lists; otherwise a random split (with a note saying so).
    """
    if name != "auto":
        return name
    from keras_pu.data import DatasetError
    from keras_pu.data import load_split

    try:
        ids = [i for s in SPLITS for i in load_split(dataset.layout, s)]
    except (KeyError, ValueError, DatasetError, FileNotFoundError):
        print(
            f"No committed split for the {dataset.layout} layout: using a "
            "seeded random split."
        )
        return None
    missing = [i for i in ids if i not in dataset]
    if missing:
        print(
            f"The committed {dataset.layout} split lists {len(missing)} "
            f"image(s) that '{dataset.root}' lacks (e.g. {missing[0]!r}): "
            "using a seeded random split instead."
        )
        return None
    return dataset.layout


def split_dataset(dataset, recipe_data, seed, splits=SPLITS):
    """`{split: SegmentationDataset}` for the requested splits.

    A recipe with `data.split` uses that committed split
    (`keras_pu.data.load_split`); without one (null), a seeded random split
    by `data.val_fraction` / `data.test_fraction`; `"auto"`: see
    `resolve_split_name`.
    """
    name = resolve_split_name(recipe_data["split"], dataset)
    if name is None:
        ids = random_split_ids(
            dataset.ids,
            recipe_data["val_fraction"],
            recipe_data["test_fraction"],
            seed,
        )
        return {s: dataset.subset(ids[s], name=f"{dataset.name} {s}")
                for s in splits}
    from keras_pu.data import load_split

    return {
        s: dataset.subset(load_split(name, s), name=f"{dataset.name} {s}")
        for s in splits
    }
