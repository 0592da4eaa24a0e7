"""The train/validation/test datasets a recipe's `data` section (or
`keras-pu evaluate`) asks for: a committed split, a split file, or a seeded
random split. Plain data logic, shared by training and evaluation."""

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

    `"auto"`: the committed split of the dataset's layout (Kvasir-SEG, BUSI,
    ISIC 2017) when the folder holds every image it lists; otherwise a
    random split (with a note saying so).
    """
    if name != "auto":
        return name
    from keras_pu.data import SPLIT_DATASETS
    from keras_pu.data import load_split

    if dataset.layout not in SPLIT_DATASETS:
        print(
            f"No committed split for the {dataset.layout} layout: using a "
            "seeded random split (data.val_fraction, data.test_fraction)."
        )
        return None
    ids = [i for s in SPLITS for i in load_split(dataset.layout, s)]
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

    `data.split` of a recipe: a committed split name (`keras_pu.data.
    SPLIT_DATASETS`) or a split file path (`keras_pu.data.apply_split`);
    `"auto"` (see `resolve_split_name`); or null, a seeded random split by
    `data.val_fraction` / `data.test_fraction`.
    """
    name = resolve_split_name(recipe_data["split"], dataset)
    if name is None:
        ids = random_split_ids(
            dataset.ids,
            recipe_data["val_fraction"],
            recipe_data["test_fraction"],
            seed,
        )
        return {s: dataset.subset(ids[s], name=f"{dataset.name} ({s})")
                for s in splits}
    from keras_pu.data import apply_split

    try:
        return {s: apply_split(dataset, s, name=name) for s in splits}
    except ValueError as e:
        from keras_pu.data import DatasetError

        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"data.split {name!r}: {e}") from None
