"""Learning-rate schedules of the recipes (keras_pu.training.schedules and
the trainer's choice), on the backend of the session."""

import keras
import numpy as np
import pytest

from keras_pu.training import Recipe
from keras_pu.training.schedules import WarmupPolynomialDecay
from keras_pu.training.trainer import build_schedule
from tests._backend_utils import to_numpy


def rates(schedule, steps):
    return np.array([float(to_numpy(schedule(s))) for s in steps])


def test_poly_warms_up_linearly_then_decays_as_nnunet():
    schedule = WarmupPolynomialDecay(1e-2, decay_steps=100, warmup_steps=10,
                                     power=0.9, end_learning_rate=1e-4)
    np.testing.assert_allclose(rates(schedule, [0, 4, 9]), [1e-3, 5e-3, 1e-2],
                               rtol=1e-6)
    expected = [1e-4 + (1e-2 - 1e-4) * (1 - p) ** 0.9 for p in (0, 0.5, 1, 1)]
    np.testing.assert_allclose(rates(schedule, [10, 60, 110, 500]), expected,
                               rtol=1e-5)
    no_warmup = WarmupPolynomialDecay(1.0, decay_steps=4)
    np.testing.assert_allclose(rates(no_warmup, [0, 2, 4]),
                               [1.0, 0.5 ** 0.9, 0.0], atol=1e-6)


def test_poly_is_saved_with_the_optimizer():
    schedule = WarmupPolynomialDecay(3e-4, decay_steps=50, warmup_steps=5)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)
    )
    assert isinstance(restored.learning_rate, WarmupPolynomialDecay) or (
        isinstance(restored._learning_rate, WarmupPolynomialDecay)
    )
    assert WarmupPolynomialDecay.from_config(schedule.get_config()).get_config() \
        == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(learning_rate=0, decay_steps=1), "learning_rate"),
     (dict(learning_rate=1, decay_steps=0), "decay_steps"),
     (dict(learning_rate=1, decay_steps=1, power=0), "power"),
     (dict(learning_rate=1, decay_steps=1, end_learning_rate=2), "end_learning_rate")],
)
def test_poly_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupPolynomialDecay(**kwargs)


def test_recipe_poly_schedule_spans_the_run():
    recipe = Recipe.from_preset("pu_unet_kvasir").replace({
        "schedule.name": "poly", "schedule.warmup_epochs": 2,
        "schedule.min_lr_ratio": 0.01, "training.epochs": 10,
        "optimizer.learning_rate": 1e-3,
    })
    schedule = build_schedule(recipe, steps_per_epoch=5)
    assert isinstance(schedule, WarmupPolynomialDecay)
    assert schedule.warmup_steps == 10 and schedule.decay_steps == 40
    np.testing.assert_allclose(rates(schedule, [9, 50]), [1e-3, 1e-5],
                               rtol=1e-5)
    with pytest.raises(Exception, match="schedule.name"):
        Recipe.from_preset("pu_unet_kvasir").replace({"schedule.name": "step"})
