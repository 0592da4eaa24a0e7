"""SegmentationModel: a functional model that can carry a training-only loss
computed from its intermediate features."""

import keras


class _FeatureLossState:
    """Plain holder, deliberately not tracked by Keras: nothing in it is part
    of the model's weights, config or saved file."""

    def __init__(self):
        self.feature_loss = None  # object following the FeatureLoss protocol
        self.feature_graph = None  # functional view: outputs + features
        self.pending = None  # features of the current training step
        self.training_step = False  # is the step being traced a train step?


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
    it. The keras-pu U-Nets are `SegmentationModel`s; wrap any other
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
        feature_graph = keras.Model(
            inputs=self.inputs,
            outputs=[self.outputs[0]] + features,
            name=f"{self.name}_with_features",
        )
        if hasattr(feature_loss, "build"):
            feature_loss.build(self._feature_shapes(feature_graph, features))
        state.feature_graph = feature_graph
        state.feature_loss = feature_loss
        state.pending = None
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
        state.feature_graph = None
        state.pending = None
        self._rebuild_step_functions()

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
        state.pending = None
        if state.feature_loss is None or not training:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        outputs = state.feature_graph(inputs, training=training)
        state.pending = outputs[1:]
        return outputs[0]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x, y, y_pred, sample_weight=sample_weight, training=training
        )
        state = self._feature_loss_state
        features, state.pending = state.pending, None
        state.training_step = bool(training)
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
        if state.feature_loss is not None and not state.training_step:
            # Validation steps compute no feature loss: report none.
            for metric in state.feature_loss.metrics:
                names = metric.result_names() if hasattr(
                    metric, "result_names"
                ) else [metric.name]
                for result_name in names:
                    results.pop(result_name, None)
        return results

    @property
    def metrics(self):
        metrics = super().metrics
        feature_loss = self._feature_loss_state.feature_loss
        if feature_loss is not None:
            metrics = metrics + list(feature_loss.metrics)
        return metrics


def _scale_loss_for_distribution(loss):
    """`loss / replicas` inside a tf.distribute replica context, else
    `loss` (Keras's own rule for the losses it computes)."""
    try:
        from keras.src.losses.loss import scale_loss_for_distribution
    except ImportError:  # a Keras without it: no tf.distribute scaling
        return loss
    return scale_loss_for_distribution(loss)
