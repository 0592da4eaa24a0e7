"""Learning-rate schedules of the recipes that Keras does not have.

`WarmupPolynomialDecay` is nnU-Net's "poly" schedule with a linear warm-up:
the rate falls as (1 - progress) ** power, steeply only at the very end,
so most of training runs near the peak rate. Keras's `PolynomialDecay` has
no warm-up and `CosineDecay`'s warm-up comes with a cosine; this is the
missing combination. Backend-agnostic (`keras.ops`), registered for
saving: a checkpoint's optimizer restores it without `custom_objects`.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pu")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `learning_rate`, then polynomial decay.

    For step t (0-based), with W = `warmup_steps`, D = `decay_steps`, peak
    rate r and final rate e = `end_learning_rate`:

        t <  W:  r * (t + 1) / W
        t >= W:  e + (r - e) * (1 - min(t - W, D) / D) ** power

    Args:
        learning_rate: peak learning rate (float > 0).
        decay_steps: steps from the end of the warm-up to the final rate
            (int >= 1).
        warmup_steps: steps of linear warm-up (int >= 0). Defaults to 0.
        power: exponent of the decay. Defaults to 0.9 (nnU-Net's).
        end_learning_rate: the rate reached after `decay_steps`. Defaults
            to 0.0.

    Example:

    ```python
    schedule = WarmupPolynomialDecay(1e-3, decay_steps=9000, warmup_steps=1000)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    ```
    """

    def __init__(self, learning_rate, decay_steps, warmup_steps=0, power=0.9,
                 end_learning_rate=0.0):
        if not learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0; received {learning_rate!r}."
            )
        if int(decay_steps) < 1 or int(warmup_steps) < 0:
            raise ValueError(
                "decay_steps must be >= 1 and warmup_steps >= 0; received "
                f"{decay_steps!r} and {warmup_steps!r}."
            )
        if not power > 0 or not 0 <= end_learning_rate <= learning_rate:
            raise ValueError(
                "power must be > 0 and 0 <= end_learning_rate <= "
                f"learning_rate; received power={power!r}, "
                f"end_learning_rate={end_learning_rate!r}."
            )
        self.learning_rate = float(learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.learning_rate
        if self.warmup_steps:
            warm = peak * (step + 1.0) / self.warmup_steps
        else:
            warm = peak
        progress = ops.minimum(
            ops.maximum(step - self.warmup_steps, 0.0), float(self.decay_steps)
        ) / self.decay_steps
        decayed = self.end_learning_rate + (peak - self.end_learning_rate) * (
            ops.power(1.0 - progress, self.power)
        )
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
        }
