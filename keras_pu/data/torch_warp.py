"""A PyTorch fast path for the affine warps of the augmentation layers.

Keras 3.15's PyTorch `ops.image.affine_transform` gathers every output
pixel through its own `map_coordinates`, treating the channel axis as a
third spatial axis: about 5 s for one 8 x 256 x 256 batch on a CPU core,
which makes training under PyTorch without TensorFlow installed ~10x slower
than the model itself. `torch.nn.functional.grid_sample` computes the same
bilinear warp with constant zero fill in one fused kernel, ~40x faster.

`FastWarpBackend` is a stand-in for a Keras preprocessing layer's
`backend` attribute: everything is the layer's own backend except
`image.affine_transform`, which goes to `affine_transform` below whenever
the warp is one it computes exactly (bilinear, constant fill with 0, the
transform rows Keras documents), and to Keras's otherwise. The layer's API,
its random draws and its results stay the same:
`tests/test_augment.py` checks the fast path against Keras's to 1e-4.
"""

FAST_INTERPOLATION = "bilinear"
FAST_FILL_MODE = "constant"


def affine_transform(images, transform, interpolation="bilinear",
                     fill_mode="constant", fill_value=0,
                     data_format=None, fallback=None):
    """Keras's `affine_transform` semantics, computed with `grid_sample`.

    Args:
        images: torch tensor (B, H, W, C) (`channels_last`) or (B, C, H, W),
            or a single image without the batch axis.
        transform: (B, 8) or (8,) rows `[a0, a1, a2, b0, b1, b2, c0, c1]`:
            output pixel (x, y) reads the input at
            `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`,
            `k = c0 x + c1 y + 1` (Keras's and TensorFlow's convention).
        interpolation, fill_mode, fill_value, data_format: as in
            `keras.ops.image.affine_transform`.
        fallback: the function to call for what this one does not compute
            (another interpolation or fill); required then.

    Returns:
        The warped images, same shape and dtype.
    """
    import torch

    channels_first = data_format == "channels_first"
    if (interpolation != FAST_INTERPOLATION or fill_mode != FAST_FILL_MODE
            or float(fill_value) != 0.0 or images.ndim not in (3, 4)):
        if fallback is None:
            raise ValueError(
                "affine_transform: only bilinear interpolation with constant "
                "zero fill has a fast path; pass `fallback`"
            )
        return fallback(images, transform, interpolation=interpolation,
                        fill_mode=fill_mode, fill_value=fill_value,
                        data_format=data_format)
    images = torch.as_tensor(images)
    transform = torch.as_tensor(transform, dtype=torch.float32,
                                device=images.device)
    single = images.ndim == 3
    if single:
        images = images[None]
    if transform.ndim == 1:
        transform = transform[None]
    x = images if channels_first else images.permute(0, 3, 1, 2)
    height, width = x.shape[2], x.shape[3]
    if height < 2 or width < 2:
        return fallback(images[0] if single else images, transform,
                        interpolation=interpolation, fill_mode=fill_mode,
                        fill_value=fill_value, data_format=data_format)
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=x.device),
        torch.arange(width, dtype=torch.float32, device=x.device),
        indexing="ij",
    )
    a0, a1, a2, b0, b1, b2, c0, c1 = (
        transform[:, i, None, None] for i in range(8)
    )
    k = c0 * cols + c1 * rows + 1.0
    source_x = (a0 * cols + a1 * rows + a2) / k
    source_y = (b0 * cols + b1 * rows + b2) / k
    # align_corners=True: -1 and 1 are the centres of the edge pixels, the
    # pixel-index convention of Keras's coordinates; "zeros" padding reads
    # 0 for neighbours outside the image, as constant fill with 0 does.
    grid = torch.stack(
        [2.0 * source_x / (width - 1) - 1.0,
         2.0 * source_y / (height - 1) - 1.0], dim=-1)
    warped = torch.nn.functional.grid_sample(
        x.to(torch.float32), grid, mode="bilinear", padding_mode="zeros",
        align_corners=True,
    ).to(x.dtype)
    if not channels_first:
        warped = warped.permute(0, 2, 3, 1)
    return warped[0] if single else warped


class _ImageOps:
    def __init__(self, image_module):
        self._image = image_module

    def affine_transform(self, images, transform, interpolation="bilinear",
                         fill_mode="constant", fill_value=0,
                         data_format=None):
        return affine_transform(
            images, transform, interpolation=interpolation,
            fill_mode=fill_mode, fill_value=fill_value,
            data_format=data_format, fallback=self._image.affine_transform,
        )

    def __getattr__(self, name):
        return getattr(self._image, name)


class FastWarpBackend:
    """A preprocessing layer's `backend`, with the fast affine warp.

    Example:

    ```python
    layer = keras.layers.RandomRotation(0.1)
    layer.backend.set_backend("torch")
    layer.backend = FastWarpBackend(layer.backend)
    ```
    """

    def __init__(self, backend):
        self._backend = backend
        self.image = _ImageOps(backend.image)

    def __getattr__(self, name):
        return getattr(self._backend, name)
