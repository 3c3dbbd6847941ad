"""PNG figures for the command line: the cost per iteration, and UFLDL's grid of
learned features (``display_network``).

matplotlib is imported inside the functions, so ``import fastbp`` never imports
it. Figures are drawn with matplotlib's object-oriented API on an Agg canvas
(no pyplot): nothing needs a display, and the global backend of the calling
program (a Jupyter session, say) is left alone. Files are written atomically.
"""

import math

import numpy as np

from .io import atomic_write

__all__ = ["loss_curve", "feature_grid", "tile_features"]


def tile_features(W, patch_shape=None, gap=1):
    """UFLDL's ``display_network`` as an array: each row of ``W`` (one hidden
    unit's incoming weights) reshaped to a patch and tiled in a grid.

    As in UFLDL, the overall mean of ``W`` is subtracted, each patch is divided
    by its own largest absolute value (so it spans at most [−1, 1]), and
    patches are separated by ``gap`` pixels of −1 (black in a gray map over [−1, 1]).

    Parameters
    ----------
    W : array-like of shape (n_units, n_inputs)
        For a Network, ``net.weights[0]`` (W^(1)).
    patch_shape : (int, int), optional
        (height, width) of a patch, with height × width = n_inputs, each row
        of W read row-major; default: square.
    gap : int, default 1

    Returns
    -------
    ndarray of shape (gap + rows·(height + gap), gap + cols·(width + gap))
        float64 in [−1, 1]; UFLDL's choice of columns: √n_units for a square
        number of units, else ⌈√n⌉ or a little more if that divides n_units.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"W must be a non-empty 2-D array (units × inputs), got shape {W.shape}")
    n_units, n_inputs = W.shape
    if patch_shape is None:
        side = math.isqrt(n_inputs)
        if side * side != n_inputs:
            raise ValueError(f"{n_inputs} inputs are not a square patch; pass patch_shape")
        patch_shape = (side, side)
    height, width = (int(s) for s in patch_shape)
    if height * width != n_inputs:
        raise ValueError(f"patch_shape {patch_shape} does not hold {n_inputs} inputs")
    if not np.isfinite(W).all():
        raise ValueError("W contains NaN or Inf")

    cols = math.isqrt(n_units)
    if cols * cols != n_units:  # UFLDL: ceil(sqrt(M)), grown a little to divide M if it can
        cols = math.ceil(math.sqrt(n_units))
        while n_units % cols and cols < 1.2 * math.sqrt(n_units):
            cols += 1
    rows = math.ceil(n_units / cols)

    A = W - W.mean()
    grid = -np.ones((gap + rows * (height + gap), gap + cols * (width + gap)))
    for j in range(n_units):
        r, c = divmod(j, cols)
        clim = np.abs(A[j]).max()
        patch = A[j].reshape(height, width) / (clim if clim > 0 else 1.0)
        top, left = gap + r * (height + gap), gap + c * (width + gap)
        grid[top:top + height, left:left + width] = patch
    return grid


def feature_grid(W, path, *, patch_shape=None, title="learned features (rows of W1)"):
    """Write :func:`tile_features` of ``W`` to ``path`` as a PNG, gray colour
    map over [−1, 1] (black −1, white +1), one block of pixels per weight.

    Returns
    -------
    str
        ``path``.
    """
    grid = tile_features(W, patch_shape)
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(5, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.04, 0.03, 0.92, 0.86))
    ax.imshow(grid, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, y=0.96)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return str(path)


def loss_curve(history, path, *, initial=None, title="cost J per iteration", xlabel="iteration",
               ylabel="J"):
    """Write the cost history to ``path`` as a PNG line plot.

    Parameters
    ----------
    history : array-like of shape (n_iterations,)
        What :func:`fastbp.train` returned.
    path : str or os.PathLike
    initial : float, optional
        J before training, drawn at iteration 0 (then history[k] is drawn at k + 1).
        The y axis is logarithmic when every J is positive and they span more
        than a factor of 20.

    Returns
    -------
    str
        ``path``.
    """
    J = np.asarray(history, dtype=np.float64).ravel()
    x = np.arange(1, J.size + 1)
    if initial is not None:
        J = np.concatenate([[float(initial)], J])
        x = np.concatenate([[0], x])
    finite = np.isfinite(J)
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(x[finite], J[finite], color="C0", lw=1.5, marker="." if J.size <= 50 else None)
    if finite.any():
        positive = J[finite]
        if positive.min() > 0 and positive.max() / positive.min() > 20:
            ax.set_yscale("log")
        ax.set_title(f"{title} (final J = {J[finite][-1]:.5g})")
    else:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return str(path)


def _matplotlib():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg
