"""SegmentationModel: a functional model that can carry training-only losses
computed from its intermediate features (an attached feature loss such as
SelfReg, and deep-supervision heads)."""

import keras
from keras import ops

from keras_pu.models import deep_supervision

DEEP_SUPERVISION_METRIC = "deep_supervision_loss"


class _FeatureLossState:
    """Plain holder, deliberately not tracked by Keras: nothing in it is part
    of the model's weights, config or saved file."""

    def __init__(self):
        self.feature_loss = None  # object following the FeatureLoss protocol
        self.deep_supervision = None  # _DeepSupervision, or None
        # Functional view sharing every layer: outputs + the outputs of the
        # layers in `view_layer_names` (what the feature loss and the
        # auxiliary heads read); None when nothing needs them.
        self.training_view = None
        self.view_layer_names = []
        self.pending_features = None  # feature-loss inputs of this step
        self.pending_auxiliary = None  # auxiliary logits of this step
        self.training_step = False  # is the step being traced a train step?


class _DeepSupervision:
    """What the training step needs to supervise the auxiliary heads (the
    heads themselves are tracked by the model: their weights are saved)."""

    def __init__(self, layer_names, factors, heads, num_classes, data_format,
                 compute_data_format):
        self.layer_names = list(layer_names)
        self.factors = list(factors)
        self.heads = list(heads)
        self.weights = deep_supervision.auxiliary_weights(len(heads))
        self.num_classes = num_classes
        self.data_format = data_format
        self.compute_data_format = compute_data_format
        self.metric = keras.metrics.Mean(name=DEEP_SUPERVISION_METRIC)


@keras.saving.register_keras_serializable(package="keras_pu")
class SegmentationModel(keras.Model):
    """A functional segmentation model with an optional training-time loss
    on its intermediate features.

    It is an ordinary functional `keras.Model` (build it exactly like
    `keras.Model(inputs, outputs)`): `predict`, `save` and `load_model` are
    unchanged. In addition, a *feature loss* can be attached for training.
    While one is attached, a training forward pass also returns the outputs
    of the layers the loss names (through a functional view that shares all
    layers and weights, so nothing is computed twice), and `compute_loss`
    adds the feature loss to the compiled loss. Inference (`training=False`)
    and the saved model never see it.

    A feature loss is any object with:
    - `layer_names`: the names of the layers whose outputs it needs;
    - optionally `build(feature_shapes)`: called once when attached, with the
      static shapes of those outputs (learned at `probe_input_shape()` when
      the model's input size is not fixed);
    - `__call__(features)`: takes the list of those outputs (same order) and
      returns a scalar loss, built from `keras.ops` only;
    - `metrics`: a list of `keras.metrics.Metric` whose results go into the
      training logs; their variables are the only state it may keep.

    `keras_pu.callbacks.SelfRegDistillation` attaches SelfReg this way at the
    start of `fit()` and detaches it at the end; that is the usual way to use
    it.

    Deep supervision is the other training-only loss: a subclass built with
    auxiliary heads (`deep_supervision=True` in the keras-pu U-Nets, see
    `keras_pu.models.deep_supervision`) adds, at every training step, the
    compiled loss of each head against the mask downsampled to its
    resolution, and logs it as `deep_supervision_loss`. The heads are part
    of the model (saved, checkpointed) but not of its output. The keras-pu U-Nets are `SegmentationModel`s; wrap any other
    functional model as `SegmentationModel(model.inputs, model.outputs)`
    (the wrapper shares the model's layers and weights).

    Args:
        inputs: the functional model's input tensor(s).
        outputs: the functional model's single output tensor (the logits).
        name: optional model name.
        **kwargs: other `keras.Model` arguments.

    Example:

    ```python
    import keras
    import keras_pu

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="enc")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="dec")(x)
    logits = keras.layers.Conv2D(1, 1, name="head")(x)
    model = keras_pu.models.SegmentationModel(inputs, logits)
    ```
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self._feature_loss_state = _FeatureLossState()

    # -- feature losses ----------------------------------------------------

    @property
    def feature_layers(self):
        """Default SelfReg roles of this model's layers, or `None`.

        A dict with `"encoder"` and `"decoder"` (lists of block-output layer
        names, the students) and `"teacher"` (the last decoder feature before
        the output head). The generic `SegmentationModel` has no defaults:
        name the layers in `SelfRegDistillation` instead.
        """
        return None

    @property
    def feature_loss(self):
        """The attached feature loss, or `None`."""
        return self._feature_loss_state.feature_loss

    def attach_feature_loss(self, feature_loss):
        """Adds `feature_loss` to every training step until detached.

        The train function is rebuilt (if one was already made) so that the
        next `fit()` traces the feature path; the model need not be
        recompiled.
        """
        if self.feature_loss is not None:
            raise ValueError(
                f"Model '{self.name}' already has a feature loss attached "
                f"({type(self.feature_loss).__name__}); detach it first."
            )
        if len(self.outputs) != 1:
            raise ValueError(
                "Feature losses need a single-output model; model "
                f"'{self.name}' has {len(self.outputs)} outputs."
            )
        layer_names = list(feature_loss.layer_names)
        features = []
        for layer_name in layer_names:
            try:
                layer = self.get_layer(layer_name)
            except ValueError:
                raise ValueError(
                    f"Model '{self.name}' has no layer named '{layer_name}' "
                    "(asked for by the feature loss). Layers: "
                    f"{[layer.name for layer in self.layers]}"
                ) from None
            try:
                features.append(layer.output)
            except (AttributeError, ValueError):
                raise ValueError(
                    f"Layer '{layer_name}' of model '{self.name}' is used "
                    "more than once in the graph, so its output is "
                    "ambiguous; name a layer that is called once."
                ) from None
        state = self._feature_loss_state
        if hasattr(feature_loss, "build"):
            feature_graph = keras.Model(
                inputs=self.inputs,
                outputs=[self.outputs[0]] + features,
                name=f"{self.name}_with_features",
            )
            feature_loss.build(self._feature_shapes(feature_graph, features))
        state.feature_loss = feature_loss
        self._rebuild_training_view()
        self._rebuild_step_functions()

    def probe_input_shape(self):
        """A concrete input shape (with batch) at which this model can run,
        used to learn the features' spatial sizes when the input shape has
        `None` sizes; `None` when unknown. Subclasses that know their size
        constraints override it."""
        shape = tuple(self.inputs[0].shape)
        if any(d is None for d in shape[1:]):
            return None
        return (1,) + shape[1:]

    def _feature_shapes(self, feature_graph, features):
        shapes = [tuple(t.shape) for t in features]
        if all(None not in s[1:] for s in shapes):
            return shapes
        probe = self.probe_input_shape()
        if probe is None:
            return shapes
        specs = feature_graph.compute_output_spec(keras.KerasTensor(probe))
        return [tuple(spec.shape) for spec in specs[1:]]

    def detach_feature_loss(self):
        """Removes the feature loss; training is plain again."""
        state = self._feature_loss_state
        if state.feature_loss is None:
            return
        state.feature_loss = None
        self._rebuild_training_view()
        self._rebuild_step_functions()

    # -- deep supervision --------------------------------------------------

    @property
    def deep_supervision_heads(self):
        """The auxiliary heads (1x1 convolutions) of deep supervision, finest
        first; empty when the model has none."""
        state = self._feature_loss_state.deep_supervision
        return [] if state is None else list(state.heads)

    def _add_deep_supervision(self, stages, num_classes, data_format,
                              compute_data_format):
        """Gives the model one auxiliary head per stage (see
        `keras_pu.models.deep_supervision`). For subclasses, in `__init__`:
        the heads must exist before the optimizer is built.

        Args:
            stages: `(layer_name, factor)` pairs, finest first: the layer
                whose output the head reads and how many times smaller than
                the logits that output is.
            num_classes: output channels of each head.
            data_format: layout of the model's logits (and of the masks).
            compute_data_format: layout of the features.
        """
        stages = list(stages)
        if not stages:
            raise ValueError(
                f"Model '{self.name}': deep supervision needs at least one "
                "decoder stage between the coarsest and the output."
            )
        heads = []
        for layer_name, factor in stages:
            feature = self.get_layer(layer_name).output
            head = keras.layers.Conv2D(
                num_classes,
                1,
                data_format=compute_data_format,
                # Float32 under any dtype policy, as the main head.
                dtype="float32",
                name=f"deep_supervision_head_{factor}",
            )
            head.build(tuple(feature.shape))
            heads.append(head)
        # A tracked attribute: the heads' weights are trained, checkpointed
        # and saved with the model, though no inference output uses them.
        self._deep_supervision_heads = heads
        self._feature_loss_state.deep_supervision = _DeepSupervision(
            [name for name, _ in stages],
            [factor for _, factor in stages],
            heads,
            num_classes,
            data_format,
            compute_data_format,
        )
        self._rebuild_training_view()

    def _rebuild_training_view(self):
        state = self._feature_loss_state
        names = []
        if state.feature_loss is not None:
            names += list(state.feature_loss.layer_names)
        if state.deep_supervision is not None:
            names += state.deep_supervision.layer_names
        names = list(dict.fromkeys(names))
        state.pending_features = state.pending_auxiliary = None
        if not names:
            state.training_view, state.view_layer_names = None, []
            return
        state.view_layer_names = names
        state.training_view = keras.Model(
            inputs=self.inputs,
            outputs=[self.outputs[0]]
            + [self.get_layer(name).output for name in names],
            name=f"{self.name}_with_features",
        )

    def _deep_supervision_loss(self, y, auxiliary_logits, sample_weight):
        """Sum over the auxiliary heads of weight x the compiled loss of the
        head's logits against the mask brought to their resolution."""
        spec = self._feature_loss_state.deep_supervision
        loss_fn = self._auxiliary_loss_function()
        sparse = deep_supervision.is_sparse_target(
            y, spec.num_classes, spec.data_format
        )
        total = None
        for logits, factor, weight in zip(
            auxiliary_logits, spec.factors, spec.weights
        ):
            if spec.compute_data_format != spec.data_format:
                logits = ops.transpose(
                    logits,
                    (0, 2, 3, 1) if spec.data_format == "channels_last"
                    else (0, 3, 1, 2),
                )
            target = deep_supervision.downsample_target(
                y, factor, spec.data_format, sparse
            )
            term = weight * ops.cast(
                loss_fn(target, logits, sample_weight=sample_weight), "float32"
            )
            total = term if total is None else total + term
        # keras.losses.Loss has already divided by the number of replicas
        # under tf.distribute; the metric reports the undivided value.
        spec.metric.update_state(_unscale_loss_for_distribution(total))
        return total

    def _auxiliary_loss_function(self):
        loss = getattr(self, "loss", None)
        if loss is None or isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                f"Model '{self.name}' has deep supervision, which applies the "
                "compiled loss to every auxiliary head: compile it with one "
                f"loss for its single output; received loss={loss!r}."
            )
        loss_fn = keras.losses.get(loss)
        if not isinstance(loss_fn, keras.losses.Loss):
            # As a Loss it reduces over the batch, applies sample weights
            # and scales for tf.distribute as Keras does for compiled losses.
            loss_fn = _FunctionLoss(loss_fn)
        return loss_fn

    def _rebuild_step_functions(self):
        # Step functions already traced hold the old forward pass and the old
        # metric list; make_*_function(force=True) is Keras's public way to
        # start afresh (they are traced again on first use).
        if getattr(self, "train_function", None) is not None:
            self.make_train_function(force=True)
        if getattr(self, "test_function", None) is not None:
            self.make_test_function(force=True)

    # -- Keras overrides ---------------------------------------------------

    def call(self, inputs, training=None, mask=None, **kwargs):
        state = self._feature_loss_state
        state.pending_features = state.pending_auxiliary = None
        if state.training_view is None or not training:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        outputs = state.training_view(inputs, training=training)
        by_name = dict(zip(state.view_layer_names, outputs[1:]))
        if state.feature_loss is not None:
            state.pending_features = [
                by_name[name] for name in state.feature_loss.layer_names
            ]
        spec = state.deep_supervision
        if spec is not None:
            state.pending_auxiliary = [
                head(by_name[name], training=training)
                for name, head in zip(spec.layer_names, spec.heads)
            ]
        return outputs[0]

    def fit(self, *args, **kwargs):
        # TensorFlow: without a distribution strategy Keras creates the
        # optimizer's variables (Adam's moments etc.) while tracing the first
        # train step, and a tf.function that creates variables is traced
        # twice (tensorflow/tensorflow#48851). Built here, with the variables
        # the trace would see, the train step is traced once: a one-step
        # `fit` of the presets' PU-UNet ends 1.9x sooner on a 2-core CPU
        # (benchmarks/fit_startup.py, docs/speed.md). JAX and PyTorch build
        # it before tracing anyway.
        if (keras.backend.backend() == "tensorflow"
                and getattr(self, "optimizer", None) is not None
                and not self.optimizer.built):
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        return super().fit(*args, **kwargs)

    # Keras's documentation of fit sits on its backend-independent Trainer.
    fit.__doc__ = next(
        (c.__dict__["fit"].__doc__ for c in keras.Model.__mro__
         if c.__dict__.get("fit") is not None and c.__dict__["fit"].__doc__),
        None,
    )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x, y, y_pred, sample_weight=sample_weight, training=training
        )
        state = self._feature_loss_state
        features, state.pending_features = state.pending_features, None
        auxiliary, state.pending_auxiliary = state.pending_auxiliary, None
        state.training_step = bool(training)
        if training and auxiliary is not None:
            loss = loss + keras.ops.cast(
                self._deep_supervision_loss(y, auxiliary, sample_weight),
                loss.dtype,
            )
        if training and features is not None and state.feature_loss:
            feature_loss = state.feature_loss(list(features))
            # Keras scales the compiled loss by 1 / replicas under
            # tf.distribute (the gradients are summed across replicas): the
            # feature loss must be scaled alike.
            feature_loss = _scale_loss_for_distribution(
                keras.ops.cast(feature_loss, loss.dtype))
            loss = loss + feature_loss
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        results = super().compute_metrics(x, y, y_pred, sample_weight)
        state = self._feature_loss_state
        if not state.training_step:
            # Validation steps compute no feature loss and no auxiliary
            # heads: report neither.
            for metric in self._training_only_metrics():
                names = metric.result_names() if hasattr(
                    metric, "result_names"
                ) else [metric.name]
                for result_name in names:
                    results.pop(result_name, None)
        return results

    @property
    def metrics(self):
        return super().metrics + self._training_only_metrics()

    def _training_only_metrics(self):
        state = self._feature_loss_state
        metrics = []
        if state.deep_supervision is not None:
            metrics.append(state.deep_supervision.metric)
        if state.feature_loss is not None:
            metrics += list(state.feature_loss.metrics)
        return metrics


class _FunctionLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred) -> per-sample losses` as a
    `keras.losses.Loss`."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _scale_loss_for_distribution(loss):
    """`loss / replicas` inside a tf.distribute replica context, else
    `loss` (Keras's own rule for the losses it computes)."""
    try:
        from keras.src.losses.loss import scale_loss_for_distribution
    except ImportError:  # a Keras without it: no tf.distribute scaling
        return loss
    return scale_loss_for_distribution(loss)


def _unscale_loss_for_distribution(loss):
    """`loss * replicas` inside a tf.distribute replica context, else
    `loss`."""
    try:
        from keras.src.losses.loss import unscale_loss_for_distribution
    except ImportError:
        return loss
    return unscale_loss_for_distribution(loss)
