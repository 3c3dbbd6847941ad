"""Data generated in code, for demos, tests and benchmarks (nothing is downloaded)."""

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
    images = natural_images(seed=seed)
    n_img, size, _ = images.shape
    idx = rng.integers(0, n_img, n_patches)
    rows = rng.integers(0, size - patch_size + 1, n_patches)
    cols = rng.integers(0, size - patch_size + 1, n_patches)
    offsets = np.arange(patch_size)
    patches = images[idx[:, None, None], rows[:, None, None] + offsets[None, :, None],
                     cols[:, None, None] + offsets[None, None, :]].reshape(n_patches, -1)
    patches -= patches.mean(axis=1, keepdims=True)
    limit = 3 * patches.std()
    patches = np.clip(patches, -limit, limit) / limit
    return (patches + 1) * 0.4 + 0.1
