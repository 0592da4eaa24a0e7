"""Training an ImageNet-encoder U-Net with `keras-pu train`: the encoder
frozen for the first epochs (`training.freeze_encoder_epochs`, carried out
by `UnfreezeEncoder`), exact resume across the unfreezing, and the error for
models without encoder."""

import shutil

import keras
import numpy as np
import pytest

from keras_pu.training import Recipe
from keras_pu.training import RecipeError
from keras_pu.training import train
from keras_pu.training.callbacks import RunCheckpoint
from tests.dataset_factory import make_busi

RECIPE = {
    "name": "tiny_encoder",
    "model": {"class": "EncoderPUUNet",
              "config": {"encoder_weights": None, "pu_stages": [32, 16],
                         "decoder_widths": [16, 16, 8, 8, 8, 8]}},
    "data": {"image_size": [32, 32], "split": None, "val_fraction": 0.25,
             "test_fraction": 0.25},
    "training": {"epochs": 2, "batch_size": 2, "seed": 3,
                 "freeze_encoder_epochs": 1},
    "augmentation": {"rotation": 10.0, "gamma": 0.3, "noise": 0.02},
    "early_stopping": {"enabled": False},
}
LIMIT = 3


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    return make_busi(tmp_path_factory.mktemp("busi"))


class Snapshots(keras.callbacks.Callback):
    """The encoder's and the decoder's weights (batch-norm statistics
    included) and the optimizer's step count at the start and after each
    epoch."""

    def __init__(self):
        super().__init__()
        self.taken = []

    def _take(self):
        encoder = {id(v) for layer in self.model.encoder_layers
                   for v in layer.weights}
        self.taken.append({
            part: [keras.ops.convert_to_numpy(v) for v in self.model.weights
                   if (id(v) in encoder) == (part == "encoder")]
            for part in ("encoder", "decoder")
        } | {"steps": int(keras.ops.convert_to_numpy(
            self.model.optimizer.iterations))})

    def on_train_begin(self, logs=None):
        self._take()

    def on_epoch_end(self, epoch, logs=None):
        self._take()


@pytest.fixture(scope="module")
def reference(busi, tmp_path_factory):
    """The uninterrupted 2-epoch run, its snapshots, and a copy of its run
    folder taken right after epoch 1 was committed (what a run killed at
    that instant leaves behind)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    after_epoch_one = tmp_path_factory.mktemp("killed") / "run"
    snapshots = Snapshots()
    real_write = RunCheckpoint._write_state_file

    def copy_after_epoch_one(self, state):
        real_write(self, state)
        if not state["finished"] and state["epochs_completed"] == 1:
            shutil.copytree(run, after_epoch_one)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunCheckpoint, "_write_state_file", copy_after_epoch_one)
        train(Recipe.from_dict(RECIPE), data_path=busi.root, output_dir=run,
              verbose=0, limit=LIMIT, callbacks=[snapshots])
    return run, snapshots.taken, after_epoch_one


def _weights(path):
    model = keras.saving.load_model(path)
    return model, [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_encoder_frozen_for_the_first_epoch_only(reference):
    run, (start, epoch_1, epoch_2), _ = reference

    def moved(a, b):
        return sum(not np.array_equal(x, y) for x, y in zip(a, b))

    assert moved(start["encoder"], epoch_1["encoder"]) == 0
    assert moved(start["decoder"], epoch_1["decoder"]) > 0
    assert moved(epoch_1["encoder"], epoch_2["encoder"]) > 0
    # Unfreezing rebuilds the optimizer; its step count carries over.
    assert 0 < epoch_1["steps"] and epoch_2["steps"] == 2 * epoch_1["steps"]
    # Saved while frozen, a checkpoint loads frozen (its optimizer state
    # covers the decoder only); the finished run's encoder is trainable.
    final, _ = _weights(run / "checkpoints/last.keras")
    assert final.encoder_trainable


def test_resume_after_the_frozen_epoch_equals_the_uninterrupted_run(
        reference):
    reference_run, _, run = reference
    frozen, _ = _weights(run / "checkpoints/last.keras")
    assert not frozen.encoder_trainable
    train(resume=True, output_dir=run, verbose=0)
    resumed, resumed_weights = _weights(run / "checkpoints/last.keras")
    reference_model, reference_weights = _weights(
        reference_run / "checkpoints/last.keras")
    assert int(resumed.optimizer.iterations) == int(
        reference_model.optimizer.iterations)
    # Tolerance: see tests/test_resume_safety.py (one Adam step ~1e-3).
    for a, b in zip(resumed_weights, reference_weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-5)


def test_freezing_a_model_without_encoder_is_an_error(busi, tmp_path):
    recipe = Recipe.from_dict(dict(
        RECIPE, model={"class": "PUUNet", "config": {"widths": 4, "depth": 2}}))
    with pytest.raises(RecipeError, match="no pretrained encoder"):
        train(recipe, data_path=busi.root, output_dir=tmp_path / "run",
              verbose=0, limit=LIMIT)
