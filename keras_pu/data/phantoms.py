"""Synthetic example images with known masks: a dermoscopic skin lesion, a
colonoscopy polyp and a breast-ultrasound tumour.

The datasets the presets are trained on cannot be redistributed, so the
package generates its own examples for `keras-pu demo`, tests and
notebooks. They are SYNTHETIC: procedurally drawn with numpy from a seed,
mimicking the look of each modality (skin tone, vignette, pigment network
and hairs; lit mucosa, vessels, lumen and specular highlights; speckle,
tissue layers, a hypoechoic mass and its acoustic shadow). They contain no
patient data and say nothing about clinical performance; a model's Dice on
them only shows that the pipeline runs and the model responds to the
structure it was trained to find.

Every generator returns a `Phantom(image, mask)`: `image` is uint8
`(size, size, 3)` RGB, `mask` is bool `(size, size)`, True on the lesion.
The same `(size, seed)` always gives the same pixels.

Example:

```python
from keras_pu.data import phantoms

image, mask = phantoms.generate("polyp", size=256, seed=0)
```
"""

import collections

import numpy as np

Phantom = collections.namedtuple("Phantom", ["image", "mask"])

KINDS = ("skin_lesion", "polyp", "ultrasound_tumour")
DESCRIPTIONS = {
    "skin_lesion": "synthetic dermoscopic image of a pigmented skin lesion",
    "polyp": "synthetic colonoscopy image of a polyp",
    "ultrasound_tumour": "synthetic breast-ultrasound image of a hypoechoic tumour",
}


def generate(kind, size=256, seed=0):
    """The phantom of `kind` (one of `KINDS`).

    Args:
        kind: "skin_lesion", "polyp" or "ultrasound_tumour".
        size: height and width in pixels (>= 32).
        seed: random seed; the same seed gives the same image.

    Returns:
        `Phantom(image, mask)`.
    """
    generators = {
        "skin_lesion": skin_lesion,
        "polyp": polyp,
        "ultrasound_tumour": ultrasound_tumour,
    }
    if kind not in generators:
        raise ValueError(f"Unknown phantom {kind!r}; choose one of {KINDS}.")
    return generators[kind](size=size, seed=seed)


# -- building blocks ---------------------------------------------------------


def _check_size(size):
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an integer >= 32; received {size!r}.")


def _blur(image, sigma):
    """Gaussian blur of a 2-D array (FFT, reflect-padded so that edges do
    not wrap around)."""
    if sigma <= 0:
        return image
    pad = int(min(3 * sigma + 1, image.shape[0] - 1, image.shape[1] - 1))
    padded = np.pad(image, pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(padded) * kernel, s=padded.shape)
    return out[pad : pad + image.shape[0], pad : pad + image.shape[1]]


def _noise(shape, sigma, rng):
    """Smooth random field with zero mean and unit standard deviation;
    `sigma` (pixels) sets the feature size."""
    field = _blur(rng.standard_normal(shape), sigma)
    field -= field.mean()
    return field / (field.std() + 1e-12)


def _blob(size, center, radius, roughness, rng, harmonics=7):
    """An irregular closed shape: radius r(theta) = R * (1 + sum of random
    low harmonics). Returns (mask, depth), depth = 1 - d / r(theta) inside
    (1 at the centre, 0 at the border), negative outside."""
    yy, xx = np.mgrid[:size, :size].astype("float64")
    dy, dx = yy - center[0], xx - center[1]
    theta = np.arctan2(dy, dx)
    dist = np.hypot(dy, dx)
    r = np.ones_like(theta)
    for k in range(2, harmonics + 2):
        amplitude = roughness * rng.uniform(0.3, 1.0) / k
        r += amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r *= radius
    depth = 1.0 - dist / r
    return depth > 0, depth


def _curve(size, rng, width, length):
    """A soft stroke in [0, 1] along a random quadratic Bezier curve (hairs,
    mucosal folds): dense points splatted on the grid, then blurred."""
    p0 = rng.uniform(-0.1, 1.1, 2) * size
    direction = rng.uniform(0, 2 * np.pi)
    p2 = p0 + length * size * np.array([np.sin(direction), np.cos(direction)])
    p1 = (p0 + p2) / 2 + rng.normal(0, 0.15 * size, 2)
    t = np.linspace(0, 1, int(4 * length * size) + 8)[:, None]
    points = np.round((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2)
    inside = np.all((points >= 0) & (points < size), axis=1)
    stroke = np.zeros((size, size))
    ys, xs = points[inside].astype(int).T
    stroke[ys, xs] = 1.0
    stroke = _blur(stroke, width / 2.0)
    peak = stroke.max()
    return stroke / peak if peak > 0 else stroke


def _to_uint8(rgb):
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype("uint8")


# -- dermoscopy --------------------------------------------------------------


def skin_lesion(size=256, seed=0):
    """A pigmented skin lesion as seen through a dermatoscope.

    Skin-toned background with tone variation and fine texture, a dark
    circular vignette (the dermatoscope's field of view), an irregular brown
    lesion that darkens towards its centre, with a pigment network, dark
    globules and a soft border, and a few hairs across the image. The mask
    is the lesion (hairs are not part of it).

    Args:
        size: height and width in pixels (>= 32).
        seed: random seed.

    Returns:
        `Phantom(image, mask)`.

    Example:

    ```python
    from keras_pu.data import phantoms

    image, mask = phantoms.skin_lesion(size=256, seed=1)
    ```
    """
    _check_size(size)
    rng = np.random.default_rng(seed)
    s = size / 256.0  # feature sizes scale with the image

    skin = np.array([0.86, 0.66, 0.57]) + rng.normal(0, 0.03, 3)
    tone = 0.05 * _noise((size, size), 28 * s, rng)
    texture = 0.02 * _noise((size, size), 1.2 * s, rng)
    image = skin[None, None, :] * (1 + tone + texture)[..., None]

    center = (size / 2 + rng.uniform(-0.08, 0.08) * size,
              size / 2 + rng.uniform(-0.08, 0.08) * size)
    mask, depth = _blob(size, center, size * rng.uniform(0.22, 0.3), 0.45, rng)
    # Soft border: the pigment fades over a few pixels around the outline.
    alpha = np.clip(_blur(mask.astype("float64"), 2.0 * s) * 1.15, 0, 1)
    core = np.clip(depth, 0, 1)
    brown = np.array([0.55, 0.36, 0.27])
    dark = np.array([0.25, 0.14, 0.10])
    shade = np.clip(core * 1.4 + 0.25 * _noise((size, size), 10 * s, rng), 0, 1)
    lesion = brown[None, None] * (1 - shade[..., None]) + dark[None, None] * shade[..., None]
    # Pigment network: a honeycomb of darker lines from a ridged noise field.
    ridges = 1 - np.abs(_noise((size, size), 2.5 * s, rng))
    network = np.clip((ridges - 0.75) * 4, 0, 1) * 0.25
    globules = np.clip(_noise((size, size), 1.8 * s, rng) - 1.8, 0, 1) * 0.5
    lesion *= (1 - network - globules)[..., None]
    # Blue-grey veil over part of the lesion.
    veil = np.clip(_noise((size, size), 20 * s, rng), 0, 1) * core * 0.35
    lesion = lesion * (1 - veil[..., None]) + np.array([0.42, 0.45, 0.55]) * veil[..., None]
    image = image * (1 - alpha[..., None]) + lesion * alpha[..., None]

    for _ in range(rng.integers(2, 6)):
        hair = _curve(size, rng, width=max(1.0, 1.6 * s), length=rng.uniform(0.4, 0.9))
        image *= (1 - 0.75 * hair)[..., None]

    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2) / (size / 2)
    vignette = np.clip((r - 1.05) / 0.3, 0, 1)
    image *= (1 - 0.92 * vignette)[..., None]
    image *= 1 - 0.12 * np.clip(r - 0.6, 0, 1)[..., None]  # lens fall-off
    return Phantom(_to_uint8(image), mask)


# -- colonoscopy -------------------------------------------------------------


def polyp(size=256, seed=0):
    """A polyp on the colon wall as seen by a colonoscope.

    Reddish mucosa with a vessel pattern, the endoscope's light falling off
    from the centre, a dark lumen, mucosal folds, and a raised, paler polyp
    shaded as a lit dome with specular highlights; black frame corners as
    in endoscopy video. The mask is the polyp.

    Args:
        size: height and width in pixels (>= 32).
        seed: random seed.

    Returns:
        `Phantom(image, mask)`.

    Example:

    ```python
    from keras_pu.data import phantoms

    image, mask = phantoms.polyp(size=256, seed=1)
    ```
    """
    _check_size(size)
    rng = np.random.default_rng(seed)
    s = size / 256.0
    yy, xx = np.mgrid[:size, :size].astype("float64")

    mucosa = np.array([0.80, 0.42, 0.34]) + rng.normal(0, 0.03, 3)
    image = mucosa[None, None] * (1 + 0.06 * _noise((size, size), 20 * s, rng))[..., None]
    vessels = np.clip((1 - np.abs(_noise((size, size), 3.0 * s, rng)) - 0.88) * 8, 0, 1)
    image *= (1 - 0.35 * vessels[..., None] * np.array([0.4, 1.0, 1.0]))

    # Lumen: a dark, blurred hole away from the polyp.
    lumen_center = rng.uniform(0.15, 0.85, 2) * size
    lumen, _ = _blob(size, lumen_center, size * 0.12, 0.3, rng)
    lumen_soft = _blur(lumen.astype("float64"), 14 * s)
    for _ in range(3):  # folds circle the lumen
        fold = _curve(size, rng, width=6 * s, length=0.7)
        image *= 1 - 0.18 * fold[..., None]

    # Polyp placed opposite the lumen.
    offset = (size / 2 - lumen_center) * 0.6
    center = np.clip(size / 2 + offset + rng.normal(0, 0.05 * size, 2),
                     0.28 * size, 0.72 * size)
    mask, depth = _blob(size, center, size * rng.uniform(0.15, 0.22), 0.25, rng, 5)
    height = np.sqrt(np.clip(depth * (2 - depth), 0, 1))  # dome profile
    gy, gx = np.gradient(height)
    light = np.array([-0.5, -0.4, 1.0])
    light /= np.linalg.norm(light)
    normal = np.stack([-gx * 12 * s, -gy * 12 * s, np.ones_like(gx)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    lambert = np.clip(normal @ light, 0, 1)
    polyp_color = np.array([0.92, 0.50, 0.40]) * (1 + 0.05 * _noise((size, size), 4 * s, rng))[..., None]
    polyp_rgb = polyp_color * (0.5 + 0.5 * lambert)[..., None]
    alpha = np.clip(_blur(mask.astype("float64"), 1.2 * s) * 1.1, 0, 1)
    image = image * (1 - alpha[..., None]) + polyp_rgb * alpha[..., None]
    # Contact shadow just outside the polyp, on the side away from the light.
    rim = np.clip(_blur(mask.astype("float64"), 4 * s) - mask, 0, 1)
    image *= 1 - 0.5 * rim[..., None]

    # Illumination from the scope: bright centre, dark lumen.
    r = np.hypot(yy - size / 2, xx - size / 2) / (size / 2)
    image *= (1.1 - 0.45 * r**2)[..., None]
    image *= (1 - 0.9 * lumen_soft)[..., None]

    # Specular highlights: wet mucosa reflects the light in small spots.
    spec = np.clip((_noise((size, size), 2.0 * s, rng) - 2.9) * 3, 0, 1)
    spec = np.maximum(spec * (1 - lumen_soft), np.clip((lambert - 0.93) * 20, 0, 1) * mask)
    image = image * (1 - spec[..., None]) + spec[..., None]

    # Black frame corners of the endoscope video.
    corner = (np.abs(yy - size / 2) + np.abs(xx - size / 2)) > 0.82 * size
    image[corner] = 0.02
    return Phantom(_to_uint8(image), mask)


# -- breast ultrasound -------------------------------------------------------


def ultrasound_tumour(size=256, seed=0):
    """A hypoechoic breast tumour in a B-mode ultrasound image.

    Grey speckle over tissue layers (bright skin line, dark fat lobules,
    brighter fibroglandular tissue, striated pectoral muscle), attenuation
    with depth, and an irregular dark mass with a few internal echoes, an
    echogenic rim and a posterior acoustic shadow; depth-scale ticks on the
    side. The mask is the mass. The image is grey, returned as 3 identical
    RGB channels (as the presets take it).

    Args:
        size: height and width in pixels (>= 32).
        seed: random seed.

    Returns:
        `Phantom(image, mask)`.

    Example:

    ```python
    from keras_pu.data import phantoms

    image, mask = phantoms.ultrasound_tumour(size=256, seed=1)
    ```
    """
    _check_size(size)
    rng = np.random.default_rng(seed)
    s = size / 256.0
    yy, xx = np.mgrid[:size, :size].astype("float64")
    depth01 = yy / size

    # Tissue echogenicity by layer, with wavy, gradual boundaries.
    d = depth01 + 0.05 * _noise((size, size), 40 * s, rng)

    def above(edge, softness):
        return 1 / (1 + np.exp(-(d - edge) / softness))

    skin_line = np.exp(-(((d - 0.05) / 0.012) ** 2))
    fat_w = above(0.08, 0.01) * (1 - above(0.3, 0.03))
    muscle_w = above(0.84, 0.02)
    gland_w = above(0.3, 0.03) * (1 - muscle_w)
    dermis_w = 1 - fat_w - gland_w - muscle_w
    fat = 0.26 + 0.1 * np.clip(_noise((size, size), 7 * s, rng), -1, 1)
    gland = 0.55 + 0.15 * _noise((size, size), 5 * s, rng)
    striation = 0.5 + 0.5 * np.sin(yy / (3.0 * s) + 2 * _noise((size, size), 25 * s, rng))
    muscle = 0.33 + 0.2 * striation
    echo = (dermis_w * 0.45 + fat_w * fat + gland_w * gland + muscle_w * muscle
            + 0.6 * skin_line)

    # The mass: dark, irregular, wider than tall, below the fat layer.
    center = (size * rng.uniform(0.45, 0.6), size * rng.uniform(0.35, 0.65))
    yy_s = center[0] + (yy - center[0]) * 1.35  # squash vertically
    mask_shape, depth_map = _blob(size, center, size * rng.uniform(0.13, 0.18), 0.6, rng, 9)
    # Re-evaluate the blob on squashed coordinates for an oval mass.
    idx_y = np.clip(np.round(yy_s).astype(int), 0, size - 1)
    mask = mask_shape[idx_y, xx.astype(int)]
    depth_map = depth_map[idx_y, xx.astype(int)]
    internal = 0.06 + 0.05 * np.clip(_noise((size, size), 3 * s, rng), 0, None)
    rim = np.clip(1 - np.abs(depth_map) / 0.08, 0, 1) * 0.35
    alpha = np.clip(_blur(mask.astype("float64"), 1.5 * s) * 1.2, 0, 1)
    echo = alpha * internal + (1 - alpha) * (echo + rim * ~mask)
    # Posterior acoustic shadow: darker column under the mass.
    cols = mask.any(axis=0)
    below = np.zeros((size, size), bool)
    if cols.any():
        bottom = np.where(mask.any(axis=1))[0].max()
        below[bottom:, :] = cols[None, :]
    shadow = _blur(below.astype("float64"), 8 * s) * np.clip((yy - center[0]) / size * 2.5, 0, 1)
    echo *= 1 - 0.55 * shadow

    # Speckle: Rayleigh-distributed, elongated laterally like real speckle.
    speckle = np.hypot(rng.standard_normal((size, size)), rng.standard_normal((size, size)))
    speckle = _blur(speckle, 0.7 * s)
    speckle = (np.roll(speckle, 1, axis=1) + speckle + np.roll(speckle, -1, axis=1)) / 3
    speckle /= speckle.mean()
    image = echo * speckle * (1 - 0.35 * depth01)  # attenuation with depth
    image = _blur(image, 0.5 * s)

    # Depth ticks on the right edge (scanner overlay, not tissue).
    ticks = (np.abs((yy % (size / 8)) - 1) < 1.0 * max(s, 0.5)) & (xx > size - 6 * s)
    image[ticks] = 0.9
    grey = np.clip(image, 0, 1)
    return Phantom(_to_uint8(np.repeat(grey[..., None], 3, axis=-1)), mask)
