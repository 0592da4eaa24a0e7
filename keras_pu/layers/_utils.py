"""Small argument helpers shared by the layers."""


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
