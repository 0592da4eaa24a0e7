"""Small argument helpers shared by the layers."""

import warnings


def normalize_tuple(value, name, length=2):
    """Turns an int or a sequence of ints into a tuple of `length` ints."""
    if isinstance(value, int):
        values = (value,) * length
    else:
        try:
            values = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(
                f"`{name}` must be an int or a sequence of {length} ints. "
                f"Received: {name}={value!r}"
            ) from None
    if len(values) != length or any(v <= 0 for v in values):
        raise ValueError(
            f"`{name}` must be a positive int or a sequence of {length} "
            f"positive ints. Received: {name}={value!r}"
        )
    return values


DATA_FORMATS = ("channels_last", "channels_first")


def standardize_data_format(data_format):
    """`None` means `keras.config.image_data_format()`; checks the value."""
    import keras

    if data_format is None:
        return keras.config.image_data_format()
    data_format = str(data_format).lower()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {DATA_FORMATS}. "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def standardize_compute_data_format(compute_data_format, data_format):
    """The layout a model computes in, whatever layout its inputs come in.

    `None` picks the fastest layout for the running backend:
    `"channels_first"` under PyTorch, `data_format` otherwise. PyTorch's
    convolutions take channels-first tensors: for every channels-last
    convolution, Keras's torch backend transposes the activation and copies
    it twice (to a contiguous channels-first tensor, then back to torch's
    channels_last memory format), which cost more than the convolutions
    themselves in our profile (benchmarks/README). Computing channels-first,
    after one transpose of the input (a view: no copy), every tensor keeps
    torch's channels_last memory format and no copy is made. TensorFlow's
    CPU convolutions and XLA prefer channels-last, so those backends keep
    `data_format`.
    """
    import keras

    if compute_data_format is None:
        if keras.backend.backend() == "torch":
            return "channels_first"
        layout = data_format
    else:
        layout = str(compute_data_format).lower()
        if layout not in DATA_FORMATS:
            raise ValueError(
                f"`compute_data_format` must be None or one of {DATA_FORMATS}. "
                f"Received: compute_data_format={compute_data_format!r}"
            )
    if layout == "channels_first" and keras.backend.backend() == "tensorflow":
        from keras_pu.hardware import tensorflow_runs_channels_first

        if not tensorflow_runs_channels_first():
            # The compute layout changes speed, not results: the model
            # transposes its inputs and outputs, so `data_format` still holds.
            warnings.warn(
                "TensorFlow cannot run channels-first convolutions on this "
                "device (a CPU without oneDNN, which TensorFlow turns on only "
                "for CPUs with AVX512-VNNI/BF16 or AMX, or with "
                "TF_ENABLE_ONEDNN_OPTS=1): the model computes channels-last "
                "instead. Results are the same; inputs and outputs keep their "
                "data_format.",
                stacklevel=3,
            )
            return "channels_last"
    return layout
