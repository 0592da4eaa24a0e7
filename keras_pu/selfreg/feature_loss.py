"""SelfReg as a feature loss for `keras_pu.models.SegmentationModel`."""

import keras
from keras import ops

from keras_pu.selfreg import defaults
from keras_pu.selfreg.losses import average_pool_by
from keras_pu.selfreg.losses import ifd_loss
from keras_pu.selfreg.losses import pool_factors
from keras_pu.selfreg.losses import scr_loss_same_size


class SelfRegState(keras.metrics.Metric):
    """The training-time state of SelfReg, kept as metric variables.

    Metric variables are carried through every backend's train step (JAX's
    stateless step included) and are never part of the model's weights, so
    nothing of SelfReg reaches a saved model. This metric holds:
    - the running means of the two losses (reset every epoch; reported in
      the logs as `scr_loss` and `ifd_loss`, unweighted);
    - the current loss weights `lambda_scr`, `lambda_ifd` (set by the
      callback's schedule; not reset);
    - the random state of the channel pairing (not reset), so that every
      step draws a fresh pairing.
    """

    RESULT_NAMES = ("scr_loss", "ifd_loss")

    def __init__(self, seed=None, name="selfreg", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.scr_total = self.add_variable(
            shape=(), initializer="zeros", name="scr_total"
        )
        self.ifd_total = self.add_variable(
            shape=(), initializer="zeros", name="ifd_total"
        )
        self.steps = self.add_variable(
            shape=(), initializer="zeros", name="steps"
        )
        # The weights are set, not accumulated: under tf.distribute every
        # replica holds them as they are (the totals above are summed
        # across replicas when read).
        self.lambda_scr = self.add_variable(
            shape=(), initializer="zeros", name="lambda_scr",
            aggregation="only_first_replica",
        )
        self.lambda_ifd = self.add_variable(
            shape=(), initializer="zeros", name="lambda_ifd",
            aggregation="only_first_replica",
        )
        self.seed_generator = keras.random.SeedGenerator(
            seed, name="selfreg_pairing"
        )
        # Assigning the generator's state variable to an attribute makes the
        # metric track it: it then travels with the metric variables.
        self.pairing_state = self.seed_generator.state

    def update_state(self, scr, ifd):
        self.scr_total.assign_add(ops.cast(scr, self.dtype))
        self.ifd_total.assign_add(ops.cast(ifd, self.dtype))
        self.steps.assign_add(ops.ones((), self.dtype))

    def result(self):
        steps = ops.maximum(self.steps, 1.0)
        return {
            "scr_loss": self.scr_total / steps,
            "ifd_loss": self.ifd_total / steps,
        }

    def result_names(self):
        return list(self.RESULT_NAMES)

    def reset_state(self):
        # Only the epoch means; the weights and the random state persist.
        for variable in (self.scr_total, self.ifd_total, self.steps):
            variable.assign(ops.zeros((), self.dtype))


class SelfRegLoss:
    """SelfReg's auxiliary loss over a model's block features.

    With students S (the encoder block outputs and the decoder block outputs
    except the last) and teacher T (the last decoder feature, stop-gradient):

        L_SCR = mean over S of scr_loss(S, T)
        L_IFD = mean over encoder S of ifd_loss(S)
                + mean over decoder S of ifd_loss(S)
        L_aux = lambda_scr * L_SCR + lambda_ifd * L_IFD

    It follows the feature-loss protocol of
    `keras_pu.models.SegmentationModel` (`layer_names`, `__call__`,
    `metrics`); `keras_pu.selfreg.SelfRegDistillation` creates, attaches
    and schedules it, which is the usual way to use it.

    Args:
        encoder_layers: names of the encoder block-output layers (students).
        decoder_layers: names of the decoder block-output layers except the
            last (students).
        teacher_layer: name of the last decoder feature before the head.
        lambda_scr: initial SCR weight. Defaults to
            `keras_pu.selfreg.defaults.LAMBDA_SCR` (0.015).
        lambda_ifd: initial IFD weight. Defaults to
            `keras_pu.selfreg.defaults.LAMBDA_IFD` (0.015).
        seed: seed of the random channel pairing. Defaults to `None`
            (random).
        pool_sizes: optional list with one `(r_h, r_w)` per student (encoder
            then decoder order); needed only when the features' spatial sizes
            cannot be learned when the loss is attached.
        data_format: layout of the features, `"channels_last"` (default) or
            `"channels_first"` (transposed to channels-last for the losses).
    """

    def __init__(
        self,
        encoder_layers,
        decoder_layers,
        teacher_layer,
        lambda_scr=defaults.LAMBDA_SCR,
        lambda_ifd=defaults.LAMBDA_IFD,
        seed=None,
        pool_sizes=None,
        data_format="channels_last",
    ):
        self.encoder_layers = list(encoder_layers)
        self.decoder_layers = list(decoder_layers)
        self.teacher_layer = teacher_layer
        if not self.encoder_layers and not self.decoder_layers:
            raise ValueError(
                "SelfReg needs at least one student feature (encoder or "
                "decoder layer names)."
            )
        if teacher_layer in self.encoder_layers + self.decoder_layers:
            raise ValueError(
                f"The teacher layer '{teacher_layer}' cannot also be a student."
            )
        self.state = SelfRegState(seed=seed)
        self.set_weights(lambda_scr, lambda_ifd)
        self.pool_sizes = None if pool_sizes is None else list(pool_sizes)
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last' or 'channels_first'; "
                f"received {data_format!r}."
            )
        self.data_format = data_format

    @property
    def layer_names(self):
        return self.encoder_layers + self.decoder_layers + [self.teacher_layer]

    @property
    def metrics(self):
        return [self.state]

    def set_weights(self, lambda_scr, lambda_ifd):
        """Sets the current loss weights (read by the next train step)."""
        for name, value in (("lambda_scr", lambda_scr),
                            ("lambda_ifd", lambda_ifd)):
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0; received {value!r}.")
        self.state.lambda_scr.assign(float(lambda_scr))
        self.state.lambda_ifd.assign(float(lambda_ifd))

    def build(self, feature_shapes):
        """Derives each student's pooling factors from the features' static
        shapes (`layer_names` order); called once, when the loss is attached
        to a model, so that an error about sizes comes before training."""
        if self.data_format == "channels_first":
            feature_shapes = [(s[0],) + tuple(s[2:]) + (s[1],)
                              for s in feature_shapes]
        *students, teacher = feature_shapes
        if self.pool_sizes is None:
            self.pool_sizes = [pool_factors(s, teacher) for s in students]
        elif len(self.pool_sizes) != len(students):
            raise ValueError(
                f"`pool_sizes` has {len(self.pool_sizes)} entries for "
                f"{len(students)} student features."
            )

    def _teacher_pyramid(self, teacher):
        """The stop-gradient teacher pooled to every student's size, each
        level pooled from the finest level that divides it (average of block
        averages = block average), so the full-resolution teacher is read
        about once rather than once per student."""
        teacher = ops.stop_gradient(ops.cast(teacher, "float32"))
        levels = {(1, 1): teacher}
        # Factors are static Python ints: this loop runs once, at tracing.
        for factors in sorted({tuple(p) for p in self.pool_sizes},
                              key=lambda f: f[0] * f[1]):
            if factors in levels:
                continue
            base = (1, 1)
            for done in levels:  # the coarsest level that divides `factors`
                divides = factors[0] % done[0] == 0 and (
                    factors[1] % done[1] == 0
                )
                if divides and done[0] * done[1] > base[0] * base[1]:
                    base = done
            levels[factors] = average_pool_by(
                levels[base], (factors[0] // base[0], factors[1] // base[1])
            )
        return levels

    def __call__(self, features):
        if self.pool_sizes is None:
            # Before the transpose: `build` takes shapes in `data_format`.
            self.build([tuple(f.shape) for f in features])
        if self.data_format == "channels_first":
            features = [ops.transpose(f, (0, 2, 3, 1)) for f in features]
        num_encoder = len(self.encoder_layers)
        *students, teacher = features
        encoder, decoder = students[:num_encoder], students[num_encoder:]
        teacher_at = self._teacher_pyramid(teacher)
        scr = ops.mean(
            ops.stack(
                [
                    scr_loss_same_size(
                        student,
                        teacher_at[tuple(pool_size)],
                        seed=self.state.seed_generator,
                    )
                    for student, pool_size in zip(students, self.pool_sizes)
                ]
            )
        )
        ifd = ops.zeros((), "float32")
        for group in (encoder, decoder):
            if group:
                ifd = ifd + ops.mean(ops.stack([ifd_loss(f) for f in group]))
        self.state.update_state(scr, ifd)
        return self.state.lambda_scr * scr + self.state.lambda_ifd * ifd
