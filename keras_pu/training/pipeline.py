"""The input pipelines of a recipe: keras_pu.data sequences for fit."""

import inspect
import math

import keras
import numpy as np

from keras_pu.training.errors import RecipeError


class EpochSync(keras.callbacks.Callback):
    """Tells the training sequence which epoch starts.

    `SegmentationSequence` draws each epoch's order and augmentation from
    (seed, epoch). Keras calls `PyDataset.on_epoch_end` at other moments
    too (e.g. once when `fit` starts), so the epoch number is set here from
    `fit`'s own count: epoch e sees the same batches in a run resumed at e
    as in the uninterrupted run.
    """

    def __init__(self, sequence):
        super().__init__()
        self.sequence = sequence

    def on_epoch_begin(self, epoch, logs=None):
        self.sequence.set_epoch(epoch)


class BatchWrapper(keras.utils.PyDataset):
    """Base of a dataset that changes each batch of another one (subclasses
    define `__getitem__`): same length, same loader settings (workers,
    multiprocessing, queue size), and epoch events passed on.

    Args:
        sequence: the `keras.utils.PyDataset` whose batches are changed.
    """

    def __init__(self, sequence):
        super().__init__(
            workers=sequence.workers,
            use_multiprocessing=sequence.use_multiprocessing,
            max_queue_size=sequence.max_queue_size,
        )
        self.sequence = sequence

    def __len__(self):
        return len(self.sequence)

    def set_epoch(self, epoch):
        self.sequence.set_epoch(epoch)

    def on_epoch_end(self):
        self.sequence.on_epoch_end()


class PaddedBatches(BatchWrapper):
    """Pads every batch of a sequence to a multiple of `multiple` images with
    zero-weight blank images, and yields `(images, masks, sample_weight)`.

    Data parallelism splits each batch evenly over the devices, so the last,
    smaller validation batch must be padded rather than dropped (dropping
    would leave images out of the validation score). The padding has weight
    0, so the metrics are exactly those of the real images, and so is the
    loss of each batch (the trainer's loss reduction is
    `mean_with_sample_weight`); Keras then averages the batches' losses
    weighted by their padded size, a difference of at most
    `multiple - 1` slots over the whole validation set.

    Args:
        sequence: a `keras.utils.PyDataset` yielding `(images, masks)`.
        multiple: the batch-size multiple (the number of devices).
    """

    def __init__(self, sequence, multiple):
        super().__init__(sequence)
        self.multiple = int(multiple)

    def __getitem__(self, index):
        images, masks = self.sequence[index]
        n = len(images)
        target = math.ceil(n / self.multiple) * self.multiple
        weights = np.ones((target,), np.float32)
        if target > n:
            weights[n:] = 0.0
            pad = target - n
            images = np.concatenate(
                [images, np.zeros((pad,) + images.shape[1:], images.dtype)])
            masks = np.concatenate(
                [masks, np.zeros((pad,) + masks.shape[1:], masks.dtype)])
        return images, masks, weights


def make_augmentation(recipe):
    """The recipe's `SegmentationAugmentation`, or None (`augmentation:
    null`). Its seed is the recipe's `training.seed`."""
    from keras_pu.data import SegmentationAugmentation

    settings = recipe["augmentation"]
    if settings is None:
        return None
    check_augmentation(settings, recipe.source)
    try:
        return SegmentationAugmentation(**settings,
                                        seed=recipe.get("training.seed"))
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{recipe.source}: 'augmentation': {e}") from None


def check_augmentation(settings, source):
    """Raises RecipeError for an `augmentation` key that
    `SegmentationAugmentation` does not take."""
    import difflib

    from keras_pu.data import SegmentationAugmentation

    if settings is None:
        return
    accepted = [
        name for name in inspect.signature(
            SegmentationAugmentation.__init__).parameters
        if name not in ("self", "seed")
    ]
    for key in settings:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            why = (" (the seed is 'training.seed')" if key == "seed" else "")
            raise RecipeError(
                f"{source}: unknown recipe key 'augmentation.{key}'{why}."
                f"{hint} Valid keys of augmentation: {sorted(accepted)}."
            )


def make_sequences(recipe, train_set, val_set, workers=None, initial_epoch=0,
                   batch_multiple=1, cache="memory"):
    """(train, val) `keras_pu.data.SegmentationSequence`s for `fit`.

    Training batches are shuffled and augmented from the recipe's seed and
    the epoch number (so a resumed run sees the batches the uninterrupted
    run would have), and have one shape (the last, smaller batch is left
    out); validation batches are in order, not augmented, and padded to a
    multiple of `batch_multiple` (the device count under data parallelism;
    see `PaddedBatches`). `cache` is `SegmentationSequence`'s: by default
    every image is decoded and resized once, into memory.
    """
    from keras_pu.data import SegmentationSequence

    training = recipe["training"]
    size = tuple(recipe.get("data.image_size"))
    batch_size = training["batch_size"]
    options = {} if workers is None else {"workers": workers}
    drop = len(train_set) >= batch_size
    train = SegmentationSequence(
        train_set,
        image_size=size,
        batch_size=batch_size,
        augmentation=make_augmentation(recipe),
        shuffle=True,
        seed=training["seed"],
        drop_remainder=drop,
        cache=cache,
        **options,
    )
    train.set_epoch(initial_epoch)
    val = SegmentationSequence(
        val_set, image_size=size, batch_size=batch_size, cache=cache,
        **options
    )
    if batch_multiple > 1:
        val = PaddedBatches(val, batch_multiple)
    return train, val
