"""Data for demos, tests and benchmarks; nothing is downloaded.

:func:`photo_patches` cuts 8×8 patches from a real photograph that ships with
matplotlib (a fastbp dependency) and whitens them as UFLDL's sparse-autoencoder
data were whitened; :func:`sample_patches` generates synthetic patches in code,
for tests that must not depend on any image file.
"""

import numpy as np


def natural_images(n_images=10, size=128, seed=0):
    """Synthetic stand-ins for UFLDL's whitened natural images: each is a sum of
    random oriented gratings and soft-edged blobs with a 1/f-like spectrum.

    Returns
    -------
    ndarray of shape (n_images, size, size), float64
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n_images, size, size))
    for k in range(n_images):
        img = np.zeros((size, size))
        for _ in range(12):  # gratings: edges and bars at every orientation
            theta = rng.uniform(0, np.pi)
            freq = rng.uniform(2, 24)
            u = np.cos(theta) * xx + np.sin(theta) * yy
            img += np.sin(2 * np.pi * freq * u + rng.uniform(0, 2 * np.pi)) / freq
        for _ in range(20):  # blobs with sharp-ish edges
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.02, 0.2)
            img += rng.normal() * np.tanh(8 * (1 - np.hypot(xx - cx, yy - cy) / r)).clip(0) / 4
        images[k] = (img - img.mean()) / img.std()
    return images


def sample_patches(n_patches=10_000, patch_size=8, seed=0):
    """Random patch_size × patch_size patches, normalised as in UFLDL's
    sampleIMAGES: remove each patch's mean, truncate to ±3 standard
    deviations, rescale to [0.1, 0.9] (the range of a sigmoid output).

    Returns
    -------
    ndarray of shape (n_patches, patch_size**2), float64
    """
    rng = np.random.default_rng(seed)
    return _normalised_patches(natural_images(seed=seed), n_patches, patch_size, rng)


def _normalised_patches(images, n_patches, patch_size, rng):
    """sampleIMAGES: random patches of ``images`` (n, height, width), each
    patch's mean removed, truncated to ±3 standard deviations, in [0.1, 0.9]."""
    n_img, height, width = images.shape
    idx = rng.integers(0, n_img, n_patches)
    rows = rng.integers(0, height - patch_size + 1, n_patches)
    cols = rng.integers(0, width - patch_size + 1, n_patches)
    offsets = np.arange(patch_size)
    patches = images[idx[:, None, None], rows[:, None, None] + offsets[None, :, None],
                     cols[:, None, None] + offsets[None, None, :]].reshape(n_patches, -1)
    patches -= patches.mean(axis=1, keepdims=True)
    limit = 3 * patches.std()
    patches = np.clip(patches, -limit, limit) / limit
    return (patches + 1) * 0.4 + 0.1


#: The photograph ``fastbp demo`` learns from: matplotlib's sample data.
PHOTO = "grace_hopper.jpg"


def photo(name=PHOTO):
    """A real photograph from matplotlib's sample data, as a grey float64 image in [0, 1]."""
    import matplotlib.image
    from matplotlib import cbook

    img = matplotlib.image.imread(cbook.get_sample_data(name, asfileobj=False))
    img = np.asarray(img, dtype=np.float64)
    if img.max() > 1:
        img = img / 255.0
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    return img


def whiten_image(img, cutoff=0.6):
    """Whiten a grey image the way UFLDL's sparse-autoencoder images (Olshausen
    and Field's IMAGES.mat) were: multiply its spectrum by the whitening filter
    R(f) = f·exp(−(f/f0)⁴), which flattens natural images' 1/f amplitude
    spectrum, with the low-pass f0 = ``cutoff`` × Nyquist keeping noise and
    JPEG blocks down. A border of 8 pixels, where the periodic filter wraps
    around, is cut off. Returns the image scaled to unit variance."""
    img = img - img.mean()
    h, w = img.shape
    side = min(h, w)
    fy = np.fft.fftfreq(h)[:, None] * side
    fx = np.fft.fftfreq(w)[None, :] * side
    f = np.hypot(fx, fy)
    f0 = cutoff * side / 2
    white = np.real(np.fft.ifft2(np.fft.fft2(img) * f * np.exp(-(f / f0) ** 4)))
    white = white[8:-8, 8:-8]
    return white / white.std()


def photo_patches(n_patches=10_000, patch_size=8, seed=0, downsample=2):
    """Random patch_size × patch_size patches of the whitened photograph
    (:func:`photo`, averaged over ``downsample`` × ``downsample`` blocks,
    :func:`whiten_image`), normalised as UFLDL's sampleIMAGES does: each
    patch's mean removed, truncated to ±3 standard deviations, rescaled to
    [0.1, 0.9].

    Returns
    -------
    ndarray of shape (n_patches, patch_size**2), float64
    """
    img = photo()
    if downsample > 1:
        h, w = (s // downsample * downsample for s in img.shape)
        img = img[:h, :w].reshape(h // downsample, downsample, w // downsample,
                                  downsample).mean(axis=(1, 3))
    return _normalised_patches(whiten_image(img)[None], n_patches, patch_size,
                               np.random.default_rng(seed))


def filter_locality(weights, k=16):
    """For each row of ``weights`` (a hidden unit's filter), the share of its
    energy Σw² in its ``k`` strongest pixels: about 0.7 for random 8×8
    filters, near 1 for small localized edges."""
    energy = np.asarray(weights, dtype=np.float64) ** 2
    top = -np.sort(-energy, axis=1)[:, :k]
    return top.sum(axis=1) / energy.sum(axis=1)
