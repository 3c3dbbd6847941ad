"""The seed's backpropagation as explicit-loop Numba kernels.

Read beside ``docs/math.md``. Names follow the math: ``a`` activations,
``delta`` residuals δ, ``dW``/``db`` the accumulated ΔW, Δb, ``weight_decay``
λ. Rows of every 2-D array are examples, so ``a[r, i]`` is a_i^(l) of example r
— except in the unit-major steps for narrow networks (below), which store
``a[i, r]``.

The four steps of backpropagation are four routines working on one *chunk* of
examples (at most CHUNK rows):

1. :func:`forward_layer`    z^(l+1) = W^(l) a^(l) + b^(l),  a^(l+1) = f(z^(l+1))
2. :func:`output_residual`  δ^(n_l) = −(y − a^(n_l)) • f'(z^(n_l))
3. :func:`hidden_residual`  δ^(l)   = ((W^(l))ᵀ δ^(l+1)) • f'(z^(l))
4. :func:`accumulate`       ΔW^(l) += δ^(l+1) (a^(l))ᵀ,  Δb^(l) += δ^(l+1)

:func:`backprop_chunk` chains them for one chunk. The parallel drivers
(:func:`cost_and_gradient_kernel`, :func:`predict_kernel`,
:func:`mean_activation_kernel`) split the m examples into fixed-size chunks and
give each of at most MAX_SLOTS *slots* a contiguous run of chunks and its own
accumulation buffer; the threads take the slots one at a time, each the next
not yet taken (:func:`fastbp._atomic.take_next`), and the slot buffers are
summed in slot order. Chunk and slot counts depend on m only, never on the
number of threads or on who took which slot, so the result is bit-identical
for any thread count and any timing, and the working memory is
O(slots × CHUNK × Σ widths + slots × parameters), never O(m × width).

Each layer makes its three matrix products — z = W a, the residual product
Wᵀδ and ΔW += δᵀa — in one of three ways (``products[l]``, chosen by the
layer's weights in :mod:`fastbp.network`; :func:`product_path` per chunk):

* SIMD layers (64 … SIMD_MAX_WEIGHTS weights) in the register-blocked tiles
  of :mod:`fastbp._simd`; the forward product reads Wᵀ, packed once per call
  into θ_t (:func:`transposed_weights`);
* BLAS layers (wider): ``np.dot`` for z and δ, and gemm with β = 1
  (:func:`fastbp._blas.gemm_accumulate`) for ΔW, so nothing is copied. BLAS
  is held to one thread while these kernels run (see :mod:`fastbp._threads`),
  so every slot computes on its own core and the thread pools never fight;
* narrow layers (fewer weights), and every chunk of fewer than 4 rows, in
  explicit loops whose order suits a few units: row by row, by columns over a
  transposed copy of the chunk (:func:`product_by_columns`, from
  ``COLUMNS_MIN_ROWS`` rows), or for ΔW as dot products over the rows (from
  ``DOTS_MIN_ROWS``).

Everything else — bias, activation, bias sums — stays in the fused loops
below.

A network whose every layer is narrow and whose f is elementwise (2-8-1,
4-3-4; :func:`unit_major`) runs the four steps unit-major instead
(:func:`backprop_chunk_units`): a chunk's block of layer l is stored as
(s_l, rows), so every loop runs over the chunk's rows and vectorises however
few units there are, and the only copy per chunk is xᵀ.

Parameters live in one flat vector θ: for l = 1 … n_l−1, W^(l) (row-major,
shape (s_{l+1}, s_l)) followed by b^(l). Kernels take θ, the layer sizes and
per-layer codes, and cut views out of θ; nothing is copied. Those views, and
the ones into the gradient and the slot buffers, are blocks
(:func:`fastbp._views.block`: no reference counting), made by the view
helpers below; a block must not outlive the array it was cut from.

float32 and float64 both compile; every constant is made with
``dtype.type(...)`` and every scalar argument arrives already cast, so float32
arithmetic is never promoted to float64.
"""

import numpy as np
from numba import prange

from ._compiler import (BLAS_MIN_ROWS, LOOPS, SIMD, SIMD_MAX_WEIGHTS_WIDE, SIMD_MIN_ROWS,
                        SIMD_WIDE_ROWS, kernel)
from ._atomic import take_next
from ._blas import gemm_accumulate
from ._simd import simd_accumulate, simd_forward, simd_residual, transpose_into
from ._exp import exp, sigmoid
from ._validation import _first_not_finite as first_not_finite
from ._views import block, flat

# Activation codes (per layer transition). SOFTMAX only ever appears on the
# output layer, together with the cross-entropy loss; EXP only on the output
# layer, together with the Poisson loss.
SIGMOID, TANH, RELU, IDENTITY, SOFTMAX = 0, 1, 2, 3, 4
EXP = 5
# Loss codes: the seed's half squared error, or cross-entropy on a softmax.
SQUARED, CROSS_ENTROPY = 0, 1
# scikit-learn's other two output losses, each on its canonical output so that
# δ^(n_l) = a − y: binary cross-entropy on logistic output units (one per label)
# and half the Poisson deviance on an exp output.
BINARY_CROSS_ENTROPY, POISSON = 2, 3


# --------------------------------------------------------------------------
# Layout of θ and of a slot's work buffer
# --------------------------------------------------------------------------
@kernel()
def layer_offset(sizes, l):
    """Where W^(l) starts in θ: the entries of W^(k), b^(k) for k < l."""
    off = 0
    for k in range(l):
        off += sizes[k + 1] * sizes[k] + sizes[k + 1]
    return off


@kernel()
def weight_view(theta, sizes, l):
    """W^(l) of shape (s_{l+1}, s_l) as a view into θ (l counts from 0)."""
    return block(theta, layer_offset(sizes, l), (sizes[l + 1], sizes[l]))


@kernel()
def bias_view(theta, sizes, l):
    """b^(l) of shape (s_{l+1},) as a view into θ (l counts from 0)."""
    return block(theta, layer_offset(sizes, l) + sizes[l + 1] * sizes[l], (sizes[l + 1],))


@kernel()
def weight_t_view(theta_t, sizes, l):
    """W^(l)ᵀ of shape (s_l, s_{l+1}) in θ_t (see :func:`transposed_weights`)."""
    return block(theta_t, layer_offset(sizes, l), (sizes[l], sizes[l + 1]))


@kernel()
def transposed_weights(theta, sizes, products, rows):
    """θ_t: a vector laid out like θ in which every SIMD layer's W^(l) is
    stored transposed, (s_l, s_{l+1}) row-major — the packed Wᵀ that
    :func:`fastbp._simd.simd_forward` reads along output units. Made once
    per call (per mini-batch in SGD) and shared by every slot, when the
    call's largest chunk has ``rows`` ≥ SIMD_MIN_ROWS (on fewer rows every
    layer runs the loops); the other entries are never read."""
    theta_t = np.empty_like(theta)
    transpose_weights_into(theta, sizes, products, rows, theta_t)
    return theta_t


@kernel()
def transpose_weights_into(theta, sizes, products, rows, theta_t):
    """:func:`transposed_weights` into an existing ``theta_t``."""
    if rows >= SIMD_MIN_ROWS:
        for l in range(sizes.shape[0] - 1):
            if products[l] == SIMD:
                transpose_into(weight_view(theta, sizes, l), weight_t_view(theta_t, sizes, l))


@kernel()
def rows_view(buf, layer, sizes, rows, capacity):
    """Rows ``0:rows`` of layer ``layer``'s block (capacity × s_layer) in a
    flat per-slot buffer that holds the blocks of layers 1 … n_l−1 in order."""
    return block(buf, buffer_offset(sizes, layer, capacity), (rows, sizes[layer]))


@kernel()
def work_size(sizes, capacity):
    """Entries of a per-slot buffer holding CHUNK rows of every layer ≥ 2."""
    return buffer_offset(sizes, sizes.shape[0], capacity)


@kernel()
def buffer_offset(sizes, layer, capacity):
    """Where layer ``layer``'s block starts in a per-slot buffer: the
    ``capacity`` rows of each of layers 1 … layer−1 before it."""
    off = 0
    for k in range(1, layer):
        off += capacity * sizes[k]
    return off


@kernel()
def data_rows(X, start, rows):
    """Rows ``start:start+rows`` of a C-contiguous 2-D array, as a C view."""
    return block(X, start * X.shape[1], (rows, X.shape[1]))


@kernel()
def n_examples(X, order):
    """m: the rows of X, or the length of ``order`` when it lists rows of X."""
    return X.shape[0] if order.shape[0] == 0 else order.shape[0]


@kernel()
def example_rows(X, order, start, rows, buf):
    """Examples ``start:start+rows``: a view of X's rows (``order`` empty), or
    rows ``order[start:start+rows]`` of X gathered into ``buf`` — the values of
    ``X[order]`` without ever copying X (train_many's index arrays)."""
    if order.shape[0] == 0:
        return data_rows(X, start, rows)
    return gather_rows(X, order, start, rows, buf)


# --------------------------------------------------------------------------
# f and f'
# --------------------------------------------------------------------------
@kernel()
def activate(a, b, activation):
    """a := f(a + b) in place: on entry ``a`` holds W a^(l) for each example
    (row), on exit a^(l+1) = f(z^(l+1)), z^(l+1) = W a^(l) + b. The bias is
    added row by row, then f runs as one flat loop over the C-contiguous
    chunk (vectorised even when a layer is only a few units wide)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    rows, n = a.shape
    for r in range(rows):
        for i in range(n):
            a[r, i] += b[i]
    if activation == SOFTMAX:
        for r in range(rows):
            top = a[r, 0]
            for i in range(1, n):
                top = max(top, a[r, i])
            total = zero
            for i in range(n):
                a[r, i] = exp(a[r, i] - top)
                total += a[r, i]
            inv = one / total
            for i in range(n):
                a[r, i] *= inv
    else:
        apply_f(flat(a), activation)


@kernel()
def apply_f(z, activation):
    """z := f(z) in place for an elementwise f (every activation but softmax),
    one flat loop over the 1-D ``z``. IDENTITY leaves z as it is."""
    zero = z.dtype.type(0)
    if activation == SIGMOID:
        for k in range(z.shape[0]):
            z[k] = sigmoid(z[k])
    elif activation == TANH:
        for k in range(z.shape[0]):
            z[k] = np.tanh(z[k])
    elif activation == RELU:
        for k in range(z.shape[0]):
            z[k] = max(z[k], zero)
    elif activation == EXP:
        for k in range(z.shape[0]):
            z[k] = exp(z[k])


@kernel()
def scale_by_derivative(delta, a, activation):
    """delta := delta • f'(z), with f' written from the activation a = f(z):
    sigmoid a(1−a), tanh 1−a², relu [z > 0] = [a > 0], identity 1.
    Both arrays are C-contiguous (rows, n): one flat loop over all entries."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    d = flat(delta)
    f = flat(a)
    if activation == SIGMOID:
        for k in range(f.shape[0]):
            d[k] *= f[k] * (one - f[k])
    elif activation == TANH:
        for k in range(f.shape[0]):
            d[k] *= one - f[k] * f[k]
    elif activation == RELU:
        for k in range(f.shape[0]):
            if f[k] <= zero:
                d[k] = zero


# --------------------------------------------------------------------------
# The four steps
# --------------------------------------------------------------------------
#: How a chunk's products are made (:func:`product_path`).
BY_LOOPS, BY_TILES, BY_BLAS = 0, 1, 2


@kernel()
def product_path(product, rows, W):
    """BY_TILES, BY_BLAS or BY_LOOPS for a layer with weights W, product code
    ``product`` (fastbp._compiler: LOOPS, SIMD, BLAS) and a chunk of ``rows``
    rows: SIMD layers use the tiles, but BLAS on chunks of SIMD_WIDE_ROWS
    rows or more when wider than SIMD_MAX_WEIGHTS_WIDE weights; every layer
    runs the loops on chunks of fewer than 4 rows. The rows of a chunk depend
    on m only, so the choice never depends on the thread count."""
    if product == LOOPS:
        return BY_LOOPS
    if product == SIMD and (rows < SIMD_WIDE_ROWS or W.size <= SIMD_MAX_WEIGHTS_WIDE):
        return BY_TILES if rows >= SIMD_MIN_ROWS else BY_LOOPS
    return BY_BLAS if rows >= BLAS_MIN_ROWS else BY_LOOPS


#: From this many rows on (a full chunk), an explicit-loop layer (fewer than
#: BLAS_MIN_WEIGHTS weights) makes its forward product when it widens, and its
#: residual product always, one output unit at a time over a transposed copy
#: of the chunk (:func:`product_by_columns`). Row by row, the inner loops run
#: over a layer's few units; by columns, over the chunk's rows.
#: ``python asv_bench/kernel_choices.py --loop-orders``: on 256 rows the
#: columns won in all 22 cases this rule uses (forward products of 4 widening
#: widths, residual products of 7 widths, both dtypes; 2→8 forward 3.2 → 2.4
#: µs, residual 6.2 → 4.1, float64); on 128 rows they lost in 7 of the 22.
#: The rows of a chunk depend on m only, so the choice never depends on the
#: thread count.
COLUMNS_MIN_ROWS = 256


@kernel()
def product_by_columns(x, W, transposed, out):
    """out_ri = Σ_j M_ij x_rj for every row r of a chunk, with M = W (the
    forward product, ``transposed`` False) or M = Wᵀ (the residual product).

    Computed one output unit i at a time over xᵀ, a contiguous transposed
    copy of x: the innermost loop runs over the chunk's rows, so it
    vectorises however few units the layer has. Each out_ri is still the sum
    over j in order j = 0, 1, ….

    x : (rows, n_in)   W : (n_out, n_in), or (n_in, n_out) if ``transposed``
    out : (rows, n_out)
    """
    rows, n_out = out.shape
    out_t = np.empty((n_out, rows), out.dtype)
    units_product(np.ascontiguousarray(x.T), W, transposed, out_t)
    for r in range(rows):
        for i in range(n_out):
            out[r, i] = out_t[i, r]


@kernel()
def units_product(x_t, W, transposed, out_t):
    """The same product unit-major: out_t[i, r] = Σ_j M_ij x_t[j, r], with
    M = W or Wᵀ (``transposed``), one output unit at a time, the sum over j
    in order j = 0, 1, … and the innermost loop over the rows.

    x_t : (n_in, rows)   out_t : (n_out, rows)
    """
    n_out, rows = out_t.shape
    for i in range(n_out):
        column = out_t[i]
        for r in range(rows):
            column[r] = out_t.dtype.type(0)
        for j in range(x_t.shape[0]):
            w = W[j, i] if transposed else W[i, j]
            x_j = x_t[j]
            for r in range(rows):
                column[r] += w * x_j[r]


@kernel()
def forward_layer(a_prev, W, W_t, b, activation, product, a):
    """Step 1 for one layer and one chunk:
    z_i^(l+1) = Σ_j W_ij^(l) a_j^(l) + b_i^(l),  a_i^(l+1) = f(z_i^(l+1)).

    a_prev : (rows, s_l)   W : (s_{l+1}, s_l)   b : (s_{l+1},)   a : (rows, s_{l+1}) out
    W_t : Wᵀ packed (s_l, s_{l+1}), read by SIMD layers only (see :func:`transposed_weights`)
    """
    rows, n_out = a.shape
    n_in = a_prev.shape[1]
    path = product_path(product, rows, W)
    if path == BY_TILES:
        simd_forward(a_prev, W, W_t, a)
    elif path == BY_BLAS:
        np.dot(a_prev, W.T, a)
    elif rows >= COLUMNS_MIN_ROWS and n_in < n_out:
        product_by_columns(a_prev, W, False, a)
    else:
        for r in range(rows):
            for i in range(n_out):
                z = a.dtype.type(0)
                for j in range(n_in):
                    z += W[i, j] * a_prev[r, j]
                a[r, i] = z
    activate(a, b, activation)  # + b, then f


@kernel()
def other_loss(a, y, loss, eps, tiny):
    """One output's cost for the two losses whose residual is δ = a − y (as
    scikit-learn's MLP computes them); ``eps``, ``tiny`` are finfo(dtype)'s:

    binary_cross_entropy  −y log p − (1 − y) log(1 − p),  p = a clipped to [eps, 1 − eps]
    poisson               y log(y / a) − y + a  (y log(y / a) = 0 when y = 0), a = exp(z)
    """
    zero = eps - eps
    one = eps / eps
    if loss == BINARY_CROSS_ENTROPY:
        p = min(max(a, eps), one - eps)
        cost = zero
        if y != zero:
            cost -= y * np.log(p)
        if y != one:
            cost -= (one - y) * np.log(one - p)
        return cost
    cost = a - y
    if y != zero:
        cost += y * np.log(y / max(a, tiny))
    return cost


@kernel()
def log_softmax(a, r, i, a_prev, W, b):
    """log a_i^(n_l) of row r, where a = softmax(z), z = W a_prev + b.

    log a_i = z_i − logsumexp(z). Where a_i is at least √tiny (≈ 1e−154 in
    float64, 1e−19 in float32) it is a normal number computed to a few ulp
    and ``log(a_i)`` is exact to a few ulp. Below that, a_i may have
    underflowed or been clamped by ``exp`` (its argument is held above −708,
    resp. −87), so log a_i is rebuilt from the logits instead:
    log a_i = (z_i − z_k) + log a_k, with k the row's largest entry
    (a_k ≥ 1/s_{n_l}, so log a_k is exact) and
    z_i − z_k = Σ_j (W_ij − W_kj) a_prev_j + b_i − b_k recomputed from the
    layer's input — O(s_{n_l−1}) work, paid only for such entries.
    """
    cutoff = np.sqrt(np.finfo(a.dtype).tiny)
    if a[r, i] >= cutoff:
        return np.log(a[r, i])
    n = a.shape[1]
    k = 0
    for j in range(1, n):
        if a[r, j] > a[r, k]:
            k = j
    diff = b[i] - b[k]
    for j in range(a_prev.shape[1]):
        diff += (W[i, j] - W[k, j]) * a_prev[r, j]
    return diff + np.log(a[r, k])


@kernel()
def output_residual(a, y, activation, loss, delta, a_prev, W, b):
    """Step 2 for one chunk; returns the chunk's summed cost Σ_k J(x^(k), y^(k)).

    squared:        J = ½ ‖a − y‖²,   δ_i = −(y_i − a_i) · f'(z_i)
    cross_entropy:  J = −Σ_i y_i log a_i with a = softmax(z), log a_i =
                    z_i − logsumexp(z) (see :func:`log_softmax`; ``a_prev``,
                    ``W``, ``b`` are the output layer's input and parameters),
                    δ_i = a_i Σ_j y_j − y_i  (= a_i − y_i when the row of y sums to 1)
    binary_cross_entropy, poisson:  J = Σ_i :func:`other_loss`,  δ_i = a_i − y_i
    """
    half = a.dtype.type(0.5)
    zero = a.dtype.type(0)
    tiny = np.finfo(a.dtype).tiny
    eps = a.dtype.type(np.finfo(a.dtype).eps)
    rows, n = a.shape
    cost = zero
    if loss == SQUARED:
        # One flat loop over the chunk's C-contiguous blocks, so the sum
        # vectorises over all its entries rather than row by row, with the
        # sigmoid's f' = a(1 − a) in the same pass, not a second one. Step 2
        # of a 64-25-64 chunk on SIMD tiles (kernel_choices.py --split, two
        # runs alternating with the row-by-row form): 256 rows 12.3–12.6 →
        # 9.8–12.0 µs in float64, 7.6–7.8 → 4.9–5.6 in float32; 32 rows
        # 1.6–1.9 → 1.2–1.4 and 1.1–1.4 → 0.5–0.6.
        fa, fy, fd = flat(a), flat(y), flat(delta)
        if activation == SIGMOID:
            one = a.dtype.type(1)
            for k in range(fa.shape[0]):
                diff = fa[k] - fy[k]  # −(y − a)
                cost += diff * diff
                fd[k] = diff * (fa[k] * (one - fa[k]))
        else:
            for k in range(fa.shape[0]):
                diff = fa[k] - fy[k]
                cost += diff * diff
                fd[k] = diff
            scale_by_derivative(delta, a, activation)
        cost *= half
    elif loss == BINARY_CROSS_ENTROPY or loss == POISSON:
        for r in range(rows):
            for i in range(n):
                cost += other_loss(a[r, i], y[r, i], loss, eps, tiny)
                delta[r, i] = a[r, i] - y[r, i]
    else:
        for r in range(rows):
            total = zero
            for i in range(n):
                total += y[r, i]
                if y[r, i] != zero:
                    cost -= y[r, i] * log_softmax(a, r, i, a_prev, W, b)
            for i in range(n):
                delta[r, i] = a[r, i] * total - y[r, i]
    return cost


@kernel()
def hidden_residual(delta_next, W, W_t, a, activation, product, sparsity_delta, delta):
    """Step 3 for one hidden layer and one chunk:
    δ_i^(l) = (Σ_j W_ji^(l) δ_j^(l+1) + sparsity_i) · f'(z_i^(l)).

    ``sparsity_delta`` is the sparse autoencoder's β(−ρ/ρ̂_i + (1−ρ)/(1−ρ̂_i))
    for this layer, or empty.
    delta_next : (rows, s_{l+1})   W : (s_{l+1}, s_l)   W_t : Wᵀ packed (SIMD layers)
    a, delta : (rows, s_l)
    """
    rows, n = delta.shape
    n_next = delta_next.shape[1]
    zero = a.dtype.type(0)
    path = product_path(product, rows, W)
    if path == BY_TILES:
        simd_residual(delta_next, W, W_t, delta)
    elif path == BY_BLAS:
        np.dot(delta_next, W, delta)
    elif rows >= COLUMNS_MIN_ROWS:
        product_by_columns(delta_next, W, True, delta)
    else:
        for r in range(rows):
            for i in range(n):
                delta[r, i] = zero
            for j in range(n_next):
                d = delta_next[r, j]
                for i in range(n):
                    delta[r, i] += W[j, i] * d
    if sparsity_delta.shape[0] > 0:
        for r in range(rows):
            for i in range(n):
                delta[r, i] += sparsity_delta[i]
    scale_by_derivative(delta, a, activation)


@kernel()
def accumulate(delta_next, a_prev, product, dW, db):
    """Step 4 for one layer and one chunk:
    ΔW_ij^(l) += Σ_k δ_i^(l+1) a_j^(l),  Δb_i^(l) += Σ_k δ_i^(l+1)  over the chunk's rows k.

    delta_next : (rows, s_{l+1})   a_prev : (rows, s_l)   dW : (s_{l+1}, s_l)
    """
    rows, n_out = delta_next.shape
    n_in = a_prev.shape[1]
    path = product_path(product, rows, dW)
    if path == BY_TILES:
        simd_accumulate(delta_next, a_prev, dW)
    elif path == BY_BLAS:
        gemm_accumulate(delta_next, a_prev, dW)  # BLAS gemm with β = 1
    elif rows >= DOTS_MIN_ROWS:
        # A narrow layer (fewer than BLAS_MIN_WEIGHTS weights): one dot product
        # over the rows per weight, on transposed copies so that the sums run
        # over contiguous memory (row by row, the inner loops would have only
        # s_l iterations; kernel_choices.py --loop-orders).
        delta_t = np.ascontiguousarray(delta_next.T)
        a_t = np.ascontiguousarray(a_prev.T)
        for i in range(n_out):
            for j in range(n_in):
                total = dW.dtype.type(0)
                for r in range(rows):
                    total += delta_t[i, r] * a_t[j, r]
                dW[i, j] += total
    else:
        for r in range(rows):
            for i in range(n_out):
                d = delta_next[r, i]
                for j in range(n_in):
                    dW[i, j] += d * a_prev[r, j]
    for r in range(rows):
        for i in range(n_out):
            db[i] += delta_next[r, i]


#: From this many rows on, a narrow layer's ΔW is summed as dot products over
#: transposed copies (:func:`accumulate`); fewer rows are not worth the copies.
#: The rows of a chunk depend on m only, so the choice never depends on the
#: thread count.
DOTS_MIN_ROWS = 16


# --------------------------------------------------------------------------
# Narrow networks: the four steps unit-major
#
# In a network whose every layer runs the explicit loops (2-8-1, 4-3-4 …) a
# chunk's blocks are stored unit-major, a^(l) as (s_l, rows): each unit's
# values over the chunk's rows lie together, so every loop below runs over
# the rows and vectorises, however few units a layer has, with no transposed
# copies per layer (only x, once per chunk). Same four steps, same sums in
# the same order of j; only the layout differs.
# --------------------------------------------------------------------------
#: Chunks of fewer rows stay row by row even in a unit-major network. Two runs
#: of ``python asv_bench/kernel_choices.py --units`` (2-8-1, 5-3-4, 4-9-6-3,
#: both dtypes): on 1–2 rows unit-major was up to 1.3× slower, on 4 rows it
#: won 9 of 12 cases, from 8 rows on all 12 (1.9–2.8× faster on 256 rows).
UNITS_MIN_ROWS = 8


@kernel()
def unit_major(activations, products, rows):
    """True when a chunk of ``rows`` rows is stored unit-major: every layer
    runs the explicit loops (``products[l] == LOOPS``, fewer than
    BLAS_MIN_WEIGHTS weights), its f is elementwise (no softmax), and the
    chunk has UNITS_MIN_ROWS rows or more. Depends on the network and on m,
    never on the thread count."""
    if rows < UNITS_MIN_ROWS:
        return False
    for l in range(products.shape[0]):
        if products[l] != LOOPS or activations[l] == SOFTMAX:
            return False
    return True


@kernel()
def units_view(buf, layer, sizes, rows, capacity):
    """Layer ``layer``'s block of a slot buffer (see :func:`rows_view`) as
    (s_layer, rows): unit-major."""
    return block(buf, buffer_offset(sizes, layer, capacity), (sizes[layer], rows))


@kernel()
def forward_units(a_prev, W, b, activation, a):
    """Step 1, unit-major: z_i^(l+1) = Σ_j W_ij^(l) a_j^(l) + b_i^(l) for all
    rows at once, then a^(l+1) = f(z^(l+1)).

    a_prev : (s_l, rows)   W : (s_{l+1}, s_l)   b : (s_{l+1},)   a : (s_{l+1}, rows) out
    """
    units_product(a_prev, W, False, a)
    for i in range(a.shape[0]):
        z = a[i]
        for r in range(z.shape[0]):
            z[r] += b[i]
    apply_f(flat(a), activation)


@kernel()
def output_residual_units(a, y, activation, loss, delta):
    """Step 2, unit-major, for the elementwise losses; returns the chunk's
    summed cost (see :func:`output_residual`).

    squared:                       J = ½ ‖a − y‖²,  δ_i = −(y_i − a_i) · f'(z_i)
    binary_cross_entropy, poisson: J = Σ_i :func:`other_loss`,  δ_i = a_i − y_i

    a, delta : (s_{n_l}, rows)   y : (rows, s_{n_l}), the chunk's targets as given
    """
    half = a.dtype.type(0.5)
    tiny = np.finfo(a.dtype).tiny
    eps = a.dtype.type(np.finfo(a.dtype).eps)
    n, rows = a.shape
    for r in range(rows):  # δ := yᵀ, then δ := a − y in place
        for i in range(n):
            delta[i, r] = y[r, i]
    d = flat(delta)
    f = flat(a)
    cost = a.dtype.type(0)
    if loss == SQUARED:
        for k in range(f.shape[0]):
            diff = f[k] - d[k]
            cost += half * diff * diff
            d[k] = diff
        scale_by_derivative(delta, a, activation)
    else:
        for k in range(f.shape[0]):
            cost += other_loss(f[k], d[k], loss, eps, tiny)
            d[k] = f[k] - d[k]
    return cost


@kernel()
def hidden_residual_units(delta_next, W, a, activation, sparsity_delta, delta):
    """Step 3, unit-major: δ_i^(l) = (Σ_j W_ji^(l) δ_j^(l+1) + sparsity_i) · f'(z_i^(l)).

    delta_next : (s_{l+1}, rows)   W : (s_{l+1}, s_l)   a, delta : (s_l, rows)
    """
    units_product(delta_next, W, True, delta)
    if sparsity_delta.shape[0] > 0:
        for i in range(delta.shape[0]):
            d = delta[i]
            for r in range(d.shape[0]):
                d[r] += sparsity_delta[i]
    scale_by_derivative(delta, a, activation)


@kernel()
def accumulate_units(delta_next, a_prev, dW, db):
    """Step 4, unit-major: ΔW_ij^(l) += Σ_k δ_i^(l+1) a_j^(l),
    Δb_i^(l) += Σ_k δ_i^(l+1), each a sum over the chunk's rows k.

    delta_next : (s_{l+1}, rows)   a_prev : (s_l, rows)   dW : (s_{l+1}, s_l)
    """
    n_out, rows = delta_next.shape
    n_in = a_prev.shape[0]
    for i in range(n_out):
        d = delta_next[i]
        for j in range(n_in):
            a_j = a_prev[j]
            total = dW.dtype.type(0)
            for r in range(rows):
                total += d[r] * a_j[r]
            dW[i, j] += total
        total = db.dtype.type(0)
        for r in range(rows):
            total += d[r]
        db[i] += total


@kernel()
def forward_chunk_units(theta, sizes, activations, x, acts, capacity):
    """Step 1 through every layer of a :func:`unit_major` network for one
    chunk of rows ``x``; returns (xᵀ, a^(n_l)), both unit-major (a^(n_l) a
    view into ``acts``). xᵀ is the one copy made."""
    rows = x.shape[0]
    x_t = np.empty((sizes[0], rows), theta.dtype)
    for r in range(rows):
        for j in range(sizes[0]):
            x_t[j, r] = x[r, j]
    a = x_t
    for l in range(sizes.shape[0] - 1):
        a_next = units_view(acts, l + 1, sizes, rows, capacity)
        forward_units(a, weight_view(theta, sizes, l), bias_view(theta, sizes, l),
                      activations[l], a_next)
        a = a_next
    return x_t, a


@kernel()
def chunk_cost_units(theta, sizes, activations, loss, x, y, acts, deltas, capacity):
    """The chunk's summed cost alone (``Network.cost``) for a unit-major
    chunk: the forward pass and :func:`output_residual_units`, whose sums run
    in the same order as in the gradient's pass, so cost() and
    cost_and_gradient() return the same J to the bit (the residual it also
    leaves in ``deltas`` is not used)."""
    a = forward_chunk_units(theta, sizes, activations, x, acts, capacity)[1]
    top = sizes.shape[0] - 1
    return output_residual_units(a, y, activations[top - 1], loss,
                                 units_view(deltas, top, sizes, x.shape[0], capacity))


@kernel()
def backprop_chunk_units(theta, sizes, activations, loss, x, y, sparsity_delta, acts, deltas,
                         capacity, grad):
    """:func:`backprop_chunk` for a :func:`unit_major` network: steps 1–4 on
    one chunk with every block unit-major; xᵀ is the one copy made."""
    rows = x.shape[0]
    top = sizes.shape[0] - 1
    x_t, a = forward_chunk_units(theta, sizes, activations, x, acts, capacity)
    delta = units_view(deltas, top, sizes, rows, capacity)
    cost = output_residual_units(a, y, activations[top - 1], loss, delta)
    for l in range(top - 1, -1, -1):
        a_prev = x_t if l == 0 else units_view(acts, l, sizes, rows, capacity)
        accumulate_units(delta, a_prev, weight_view(grad, sizes, l), bias_view(grad, sizes, l))
        if l > 0:
            delta_prev = units_view(deltas, l, sizes, rows, capacity)
            sparse = sparsity_delta if l == 1 else sparsity_delta[:0]
            hidden_residual_units(delta, weight_view(theta, sizes, l), a_prev,
                                  activations[l - 1], sparse, delta_prev)
            delta = delta_prev
    return cost


# --------------------------------------------------------------------------
# One chunk, all layers
# --------------------------------------------------------------------------
@kernel()
def forward_chunk(theta, theta_t, sizes, activations, products, x, acts, capacity):
    """Forward pass of one chunk through every layer; returns a^(n_l) (a view
    into ``acts``)."""
    rows = x.shape[0]
    a = x
    for l in range(sizes.shape[0] - 1):
        a_next = rows_view(acts, l + 1, sizes, rows, capacity)
        forward_layer(a, weight_view(theta, sizes, l), weight_t_view(theta_t, sizes, l),
                      bias_view(theta, sizes, l), activations[l], products[l], a_next)
        a = a_next
    return a


@kernel()
def backprop_chunk(theta, theta_t, sizes, activations, products, loss, x, y,
                   sparsity_delta, acts, deltas, capacity, grad):
    """Steps 1–4 for one chunk: adds the chunk's ΔW, Δb into ``grad`` (laid out
    like θ) and returns its summed cost; unit-major (:func:`backprop_chunk_units`)
    or row by row (:func:`backprop_chunk_rows`)."""
    if unit_major(activations, products, x.shape[0]):
        return backprop_chunk_units(theta, sizes, activations, loss, x, y, sparsity_delta, acts,
                                    deltas, capacity, grad)
    return backprop_chunk_rows(theta, theta_t, sizes, activations, products, loss, x, y,
                               sparsity_delta, acts, deltas, capacity, grad)


@kernel()
def backprop_chunk_rows(theta, theta_t, sizes, activations, products, loss, x, y,
                        sparsity_delta, acts, deltas, capacity, grad):
    """:func:`backprop_chunk` with every block row by row, (rows, s_l)."""
    rows = x.shape[0]
    n_layers = sizes.shape[0]
    top = n_layers - 1
    a_out = forward_chunk(theta, theta_t, sizes, activations, products, x, acts, capacity)
    delta = rows_view(deltas, top, sizes, rows, capacity)
    a_top = x if top == 1 else rows_view(acts, top - 1, sizes, rows, capacity)
    cost = output_residual(a_out, y, activations[top - 1], loss, delta, a_top,
                           weight_view(theta, sizes, top - 1), bias_view(theta, sizes, top - 1))
    for l in range(top - 1, -1, -1):
        a_prev = x if l == 0 else rows_view(acts, l, sizes, rows, capacity)
        accumulate(delta, a_prev, products[l], weight_view(grad, sizes, l),
                   bias_view(grad, sizes, l))
        if l > 0:
            delta_prev = rows_view(deltas, l, sizes, rows, capacity)
            sparse = sparsity_delta if l == 1 else sparsity_delta[:0]
            hidden_residual(delta, weight_view(theta, sizes, l), weight_t_view(theta_t, sizes, l),
                            a_prev, activations[l - 1], products[l], sparse, delta_prev)
            delta = delta_prev
    return cost


# --------------------------------------------------------------------------
# Parallel drivers
#
# Each driver splits the m examples into n_chunks chunks of ``chunk`` rows and
# the chunks into n_slots ≤ max_slots contiguous runs (``slot_chunks``); a slot
# works through its run with its own buffers. With a single slot the driver
# calls the slot directly and never wakes the thread pool.
# --------------------------------------------------------------------------
@kernel()
def slot_chunks(slot, n_slots, n_chunks):
    """The contiguous run of chunks [first, stop) that a slot processes."""
    return slot * n_chunks // n_slots, (slot + 1) * n_chunks // n_slots


@kernel()
def cost_and_gradient_slot(s, n_slots, chunk, theta, theta_t, sizes, activations, products, loss,
                           X, Y, order, sparsity_delta, want_gradient, check, acts, deltas, xb,
                           yb, grad):
    """One slot's run of chunks: adds their ΔW, Δb into ``grad`` (if
    ``want_gradient``) and returns their summed cost Σ_k J(x^(k), y^(k)).
    The examples are X's rows, or X[order] gathered chunk by chunk into
    ``xb``, ``yb`` (see :func:`example_rows`). With ``check``, each chunk's
    rows of X and Y are first checked finite, while they come into cache for
    the chunk anyway; at the first NaN or ±Inf the slot stops and returns
    NaN (the caller then says which array holds it)."""
    m = n_examples(X, order)
    first, stop = slot_chunks(s, n_slots, (m + chunk - 1) // chunk)
    cost = theta.dtype.type(0)
    for c in range(first, stop):
        start = c * chunk
        rows = min(chunk, m - start)
        x = example_rows(X, order, start, rows, xb)
        y = example_rows(Y, order, start, rows, yb)
        if check and first_not_finite(x, y, theta[:0]) != 0:
            return theta.dtype.type(np.nan)
        if want_gradient:
            cost += backprop_chunk(theta, theta_t, sizes, activations, products, loss, x, y,
                                   sparsity_delta, acts, deltas, chunk, grad)
        elif unit_major(activations, products, rows):
            cost += chunk_cost_units(theta, sizes, activations, loss, x, y, acts, deltas, chunk)
        else:
            a_out = forward_chunk(theta, theta_t, sizes, activations, products, x, acts, chunk)
            top = sizes.shape[0] - 1
            a_top = x if top == 1 else rows_view(acts, top - 1, sizes, rows, chunk)
            cost += chunk_cost(a_out, y, loss, a_top, weight_view(theta, sizes, top - 1),
                               bias_view(theta, sizes, top - 1))
    return cost


@kernel()
def cost_and_gradient_kernel(theta, sizes, activations, products, loss, X, Y,
                             weight_decay, sparsity_delta, want_gradient, check, m_total,
                             chunk, max_slots, threads, workspace, grad):
    """Batch cost J(W,b) and, if ``want_gradient``, its gradient into ``grad``.

    J = (1/m) Σ_k J(x^(k), y^(k)) + (λ/2) Σ_l ‖W^(l)‖²
    grad_W = (1/m) ΔW + λW,   grad_b = (1/m) Δb

    with the sums over the rows of X and m = ``m_total`` (X.shape[0], or the
    examples on all MPI ranks when X is one rank's shard). Returns J without
    the sparsity term (the wrapper adds β Σ KL).

    ``workspace`` has a row of at least 2·work_size + n_params entries per
    slot (activations, residuals, ΔW and Δb), reused from call to call so the
    kernel neither allocates nor page-faults its way through tens of MB.
    The slots run on ``threads`` threads of the current parallel region if
    that is 2 or more (:func:`cost_and_gradient_rows`), else in turn on the
    calling thread: the same result to the bit.

    With ``check``, X and Y are checked finite chunk by chunk inside the
    slots (:func:`cost_and_gradient_slot`) instead of in a pass of their own
    (θ is the caller's to check): J is then NaN if either holds a NaN or
    ±Inf, and the caller finds out which.
    """
    return cost_and_gradient_rows(theta, sizes, activations, products, loss, X, Y,
                                  np.empty(0, np.int64), weight_decay, sparsity_delta,
                                  want_gradient, check, m_total, chunk, max_slots, threads,
                                  workspace, grad)


@kernel()
def slot_buffers(row, n_work, n_params, chunk, n_x, n_y, want_gradient, gathered):
    """A slot's workspace row: activations, residuals, ΔW/Δb, and (only when
    the examples are gathered through an index array) a chunk of X and of Y."""
    acts = block(row, 0, (n_work,))
    deltas = block(row, n_work, (n_work,))
    slot_grad = block(row, 2 * n_work, (n_params if want_gradient else 0,))
    off = 2 * n_work + n_params
    xb = block(row, off, (chunk * n_x if gathered else 0,))
    off += chunk * n_x if gathered else 0
    yb = block(row, off, (chunk * n_y if gathered else 0,))
    return acts, deltas, slot_grad, xb, yb


@kernel()
def gradient_slot(s, n_slots, chunk, theta, theta_t, sizes, activations, products, loss, X, Y,
                  order, sparsity_delta, want_gradient, check, row, scratch):
    """Slot ``s`` of a multi-slot batch: zeroes its ΔW/Δb buffer in ``row``,
    accumulates its chunks there and returns their summed cost. Activations,
    residuals (and gathered rows) go to the workspace row ``scratch``, shared
    by the slots one thread runs in turn: they are overwritten before they
    are read, so which row holds them never changes a bit, and a thread that
    keeps to one row finds it in cache."""
    n_work = work_size(sizes, chunk)
    gathered = order.shape[0] > 0
    acts, deltas, _, xb, yb = slot_buffers(scratch, n_work, theta.shape[0], chunk, X.shape[1],
                                           Y.shape[1], want_gradient, gathered)
    slot_grad = slot_buffers(row, n_work, theta.shape[0], chunk, X.shape[1], Y.shape[1],
                             want_gradient, gathered)[2]
    for p in range(slot_grad.shape[0]):
        slot_grad[p] = theta.dtype.type(0)
    return cost_and_gradient_slot(s, n_slots, chunk, theta, theta_t, sizes, activations,
                                  products, loss, X, Y, order, sparsity_delta, want_gradient,
                                  check, acts, deltas, xb, yb, slot_grad)


@kernel(parallel=True)
def gradient_slots_parallel(n_workers, n_slots, chunk, theta, theta_t, sizes, activations,
                            products, loss, X, Y, order, sparsity_delta, want_gradient, check,
                            workspace, slot_cost):
    """:func:`gradient_slot` for every slot, on ``n_workers`` threads: each
    takes the next slot not yet taken (:func:`fastbp._atomic.take_next`)
    until none is left, so a thread slowed by a shared core takes fewer
    slots instead of holding up the call. Each slot sums into its own row's
    ΔW/Δb, so the result does not depend on who took which. Thread w keeps
    the scratch of workspace row w for all its slots. One scratch row per
    thread instead of one per slot: measured (UFLDL, m = 10,240, float64)
    the slot-per-row layout streamed 16 × 364 KB of cold scratch through the
    caches per call."""
    taken = np.zeros(1, np.int64)
    for w in prange(n_workers):
        s = take_next(taken)
        while s < n_slots:
            slot_cost[s] = gradient_slot(s, n_slots, chunk, theta, theta_t, sizes, activations,
                                         products, loss, X, Y, order, sparsity_delta,
                                         want_gradient, check, workspace[s], workspace[w])
            s = take_next(taken)


@kernel()
def cost_and_gradient_rows(theta, sizes, activations, products, loss, X, Y, order,
                           weight_decay, sparsity_delta, want_gradient, check, m_total, chunk,
                           max_slots, threads, workspace, grad):
    """:func:`cost_and_gradient_kernel` on X's rows, or on X[order] read in
    place (``order`` non-empty; the workspace rows then also hold a chunk of X
    and Y). The slots run on ``threads`` threads if that is 2 or more, each
    thread taking the next slot left, else one after another on the calling
    thread: the same slots and the same sums either way, so the result is the
    same to the bit (train_many runs one network per thread, ``threads`` = 0)."""
    dtype = theta.dtype
    m = n_examples(X, order)
    n_params = theta.shape[0]
    n_slots = min(max_slots, (m + chunk - 1) // chunk)
    if n_slots == 1:
        return one_slot_rows(theta, sizes, activations, products, loss, X, Y, order,
                             weight_decay, sparsity_delta, want_gradient, check, m_total, chunk,
                             workspace, grad)
    n_work = work_size(sizes, chunk)
    slot_cost = np.zeros(n_slots, dtype)
    theta_t = transposed_weights(theta, sizes, products, chunk)
    parallel = threads >= 2
    if parallel:
        gradient_slots_parallel(min(n_slots, threads), n_slots, chunk, theta,
                                theta_t, sizes, activations, products, loss, X,
                                Y, order, sparsity_delta, want_gradient, check, workspace,
                                slot_cost)
    else:
        for s in range(n_slots):
            slot_cost[s] = gradient_slot(s, n_slots, chunk, theta, theta_t, sizes, activations,
                                         products, loss, X, Y, order, sparsity_delta,
                                         want_gradient, check, workspace[s], workspace[0])
    if want_gradient:
        slot_grad = workspace[:n_slots, 2 * n_work:2 * n_work + n_params]
        if parallel:
            sum_slots(slot_grad, grad)
        else:
            for k in range((n_params + REDUCE_BLOCK - 1) // REDUCE_BLOCK):
                sum_slots_block(slot_grad, grad, k)
    data_cost = dtype.type(0)
    for s in range(n_slots):
        data_cost += slot_cost[s]
    return finish_cost_and_gradient(theta, sizes, data_cost, m_total, weight_decay,
                                    want_gradient, grad)


@kernel()
def one_slot_rows(theta, sizes, activations, products, loss, X, Y, order, weight_decay,
                  sparsity_delta, want_gradient, check, m_total, chunk, workspace, grad):
    """:func:`cost_and_gradient_kernel` for m ≤ chunk examples, on X's rows or
    on X[order]: one slot, no thread pool, ΔW and Δb accumulated straight into
    ``grad``."""
    if want_gradient:
        for p in range(theta.shape[0]):
            grad[p] = theta.dtype.type(0)
    acts, deltas, _, xb, yb = slot_buffers(
        workspace[0], work_size(sizes, chunk), theta.shape[0], chunk, X.shape[1], Y.shape[1],
        False, order.shape[0] > 0)
    theta_t = transposed_weights(theta, sizes, products, n_examples(X, order))
    data_cost = cost_and_gradient_slot(0, 1, chunk, theta, theta_t, sizes, activations,
                                       products, loss, X, Y, order, sparsity_delta,
                                       want_gradient, check, acts, deltas, xb, yb, grad)
    return finish_cost_and_gradient(theta, sizes, data_cost, m_total, weight_decay,
                                    want_gradient, grad)


@kernel()
def small_batch_kernel(theta, sizes, activations, products, loss, X, Y, weight_decay,
                       sparsity_delta, want_gradient, check, grad):
    """:func:`cost_and_gradient_kernel` for m ≤ CHUNK examples (one chunk,
    one slot, no threads) with nothing around it: returns (0, J), or, when
    ``check`` is set and X, Y or θ holds a NaN or ±Inf, (1, 2 or 3
    respectively, NaN) without computing anything. Its buffers are sized for
    the m rows and allocated here, so concurrent calls share nothing. With
    the one chunk of all m rows it computes what the general kernel computes,
    to the bit; what it saves is the calls around it (a one-example gradient
    is mostly call overhead)."""
    if check:
        code = first_not_finite(X, Y, theta)
        if code != 0:
            return code, np.nan
    m = X.shape[0]
    n_work = work_size(sizes, m)
    workspace = np.empty((1, 2 * n_work), theta.dtype)
    return 0, one_slot_rows(theta, sizes, activations, products, loss, X, Y,
                            np.empty(0, np.int64), weight_decay, sparsity_delta,
                            want_gradient, False, m, m, workspace, grad)


@kernel()
def finish_cost_and_gradient(theta, sizes, data_cost, m_total, weight_decay, want_gradient,
                             grad):
    """J = (1/m) Σ_k J_k + (λ/2) ΣW²;  grad := (1/m)(ΔW, Δb) + (λW, 0)."""
    dtype = theta.dtype
    inv_m = dtype.type(1) / dtype.type(m_total)
    decay = apply_weight_decay(theta, sizes, inv_m, weight_decay, want_gradient, grad)
    return data_cost * inv_m + dtype.type(0.5) * weight_decay * decay


@kernel()
def chunk_cost(a, y, loss, a_prev, W, b):
    """The chunk's summed cost alone (no residual), for ``Network.cost``;
    ``a_prev``, ``W``, ``b`` as in :func:`output_residual`."""
    half = a.dtype.type(0.5)
    zero = a.dtype.type(0)
    tiny = np.finfo(a.dtype).tiny
    eps = a.dtype.type(np.finfo(a.dtype).eps)
    cost = zero
    rows, n = a.shape
    for r in range(rows):
        for i in range(n):
            if loss == SQUARED:
                diff = a[r, i] - y[r, i]
                cost += half * diff * diff
            elif loss == BINARY_CROSS_ENTROPY or loss == POISSON:
                cost += other_loss(a[r, i], y[r, i], loss, eps, tiny)
            elif y[r, i] != zero:
                cost -= y[r, i] * log_softmax(a, r, i, a_prev, W, b)
    return cost


#: Parameters per block when the slot buffers are summed in parallel.
REDUCE_BLOCK = 16384


@kernel(parallel=True)
def sum_slots(slot_grad, grad):
    """grad[p] = Σ_s slot_grad[s, p], slots summed in order for every p
    (parallel over blocks of parameters, so deterministic)."""
    n_params = slot_grad.shape[1]
    n_blocks = (n_params + REDUCE_BLOCK - 1) // REDUCE_BLOCK
    for k in prange(n_blocks):
        sum_slots_block(slot_grad, grad, k)


@kernel()
def sum_slots_block(slot_grad, grad, k):
    """Block ``k`` of :func:`sum_slots`: parameters k·REDUCE_BLOCK … ."""
    n_slots, n_params = slot_grad.shape
    for p in range(k * REDUCE_BLOCK, min(n_params, (k + 1) * REDUCE_BLOCK)):
        total = slot_grad[0, p]
        for s in range(1, n_slots):
            total += slot_grad[s, p]
        grad[p] = total


@kernel()
def apply_weight_decay(theta, sizes, inv_m, weight_decay, want_gradient, grad):
    """grad_W := (1/m) ΔW + λW, grad_b := (1/m) Δb (if ``want_gradient``);
    returns Σ_l ‖W^(l)‖² for the cost's decay term. Each W^(l) is one
    contiguous run of θ, so both run as flat loops over a 1-D view of it
    (measured 2× faster than row-by-row loops over the 2-D view, and 3.7×
    faster than loops indexing θ at an offset, which LLVM does not vectorise)."""
    decay = theta.dtype.type(0)
    off = 0
    for l in range(sizes.shape[0] - 1):
        n_weights = sizes[l + 1] * sizes[l]
        end = off + n_weights + sizes[l + 1]
        W = theta[off:off + n_weights]
        for p in range(n_weights):
            decay += W[p] * W[p]
        if want_gradient:
            dW = grad[off:off + n_weights]
            for p in range(n_weights):
                dW[p] = dW[p] * inv_m + weight_decay * W[p]
            db = grad[off + n_weights:end]
            for p in range(db.shape[0]):
                db[p] *= inv_m
        off = end
    return decay


@kernel()
def predict_slot(s, n_slots, chunk, theta, theta_t, sizes, activations, products, X, acts, out):
    m = X.shape[0]
    first, stop = slot_chunks(s, n_slots, (m + chunk - 1) // chunk)
    for c in range(first, stop):
        start = c * chunk
        rows = min(chunk, m - start)
        x = data_rows(X, start, rows)
        target = data_rows(out, start, rows)
        if unit_major(activations, products, rows):
            a_t = forward_chunk_units(theta, sizes, activations, x, acts, chunk)[1]
            for r in range(rows):
                for i in range(a_t.shape[0]):
                    target[r, i] = a_t[i, r]
        else:
            a_out = forward_chunk(theta, theta_t, sizes, activations, products, x, acts, chunk)
            for r in range(rows):
                for i in range(a_out.shape[1]):
                    target[r, i] = a_out[r, i]


@kernel()
def small_predict_kernel(theta, sizes, activations, products, X, out):
    """:func:`predict_kernel` for m ≤ CHUNK rows (one chunk) with the input
    check: returns 0, or 1 (X) or 3 (θ) when that holds a NaN or ±Inf
    (``out`` then unwritten). Its buffer is sized for the m rows and
    allocated here, so concurrent calls share nothing."""
    code = first_not_finite(X, X[:0], theta)
    if code != 0:
        return code
    m = X.shape[0]
    acts = np.empty(work_size(sizes, m), theta.dtype)
    theta_t = transposed_weights(theta, sizes, products, m)
    predict_slot(0, 1, m, theta, theta_t, sizes, activations, products, X, acts, out)
    return 0


@kernel(parallel=True)
def predict_slots_parallel(n_slots, chunk, theta, theta_t, sizes, activations, products, X,
                           slot_acts, out):
    """:func:`predict_slot` for every slot, each thread taking the next slot
    left (as :func:`gradient_slots_parallel`)."""
    taken = np.zeros(1, np.int64)
    for w in prange(n_slots):  # as many takers as slots: the late ones find none left
        s = take_next(taken)
        while s < n_slots:
            predict_slot(s, n_slots, chunk, theta, theta_t, sizes, activations, products, X,
                         slot_acts[s], out)
            s = take_next(taken)


@kernel()
def predict_kernel(theta, sizes, activations, products, X, chunk, max_slots, parallel, out):
    """h_{W,b}(x) for every row of X into ``out`` (m, s_{n_l}); the slots run
    in parallel if ``parallel``, else in turn (each row's result is the same)."""
    m = X.shape[0]
    n_slots = min(max_slots, (m + chunk - 1) // chunk)
    slot_acts = np.empty((n_slots, work_size(sizes, chunk)), theta.dtype)
    theta_t = transposed_weights(theta, sizes, products, min(m, chunk))
    if n_slots == 1 or not parallel:
        for s in range(n_slots):
            predict_slot(s, n_slots, chunk, theta, theta_t, sizes, activations, products, X,
                         slot_acts[s], out)
    else:
        predict_slots_parallel(n_slots, chunk, theta, theta_t, sizes, activations, products, X,
                               slot_acts, out)


@kernel()
def hidden_sum_slot(s, n_slots, chunk, W, W_t, b, activation, product, X, order, xb, acts,
                    total):
    """Adds Σ_k a^(2)(x^(k)) over the slot's chunks into ``total`` (examples:
    X's rows, or X[order] gathered into ``xb``)."""
    m = n_examples(X, order)
    n_hidden = W.shape[0]
    first, stop = slot_chunks(s, n_slots, (m + chunk - 1) // chunk)
    for c in range(first, stop):
        start = c * chunk
        rows = min(chunk, m - start)
        a = block(acts, 0, (rows, n_hidden))
        forward_layer(example_rows(X, order, start, rows, xb), W, W_t, b, activation, product,
                      a)
        for r in range(rows):
            for j in range(n_hidden):
                total[j] += a[r, j]


@kernel()
def mean_activation_kernel(theta, sizes, activations, products, X, chunk, max_slots, parallel,
                           rho_hat):
    """ρ̂_j = (1/m) Σ_k a_j^(2)(x^(k)): the first hidden layer's mean activation
    over all m examples, chunked like the other drivers (slots in parallel if
    ``parallel``)."""
    mean_activation_rows(theta, sizes, activations, products, X, np.empty(0, np.int64), chunk,
                         max_slots, parallel, rho_hat)


@kernel(parallel=True)
def hidden_sums_parallel(n_slots, chunk, W, W_t, b, activation, product, X, order, slot_x,
                         slot_acts, slot_sum):
    """:func:`hidden_sum_slot` for every slot, each thread taking the next
    slot left (as :func:`gradient_slots_parallel`)."""
    taken = np.zeros(1, np.int64)
    for w in prange(n_slots):  # as many takers as slots: the late ones find none left
        s = take_next(taken)
        while s < n_slots:
            hidden_sum_slot(s, n_slots, chunk, W, W_t, b, activation, product, X, order,
                            slot_x[s], slot_acts[s], slot_sum[s])
            s = take_next(taken)


@kernel()
def mean_activation_rows(theta, sizes, activations, products, X, order, chunk, max_slots,
                         parallel, rho_hat):
    """:func:`mean_activation_kernel` on X's rows or on X[order]; the slots run
    in parallel if ``parallel``, else in turn (the same sums either way)."""
    dtype = theta.dtype
    m = n_examples(X, order)
    n_hidden = sizes[1]
    n_slots = min(max_slots, (m + chunk - 1) // chunk)
    slot_sum = np.zeros((n_slots, n_hidden), dtype)
    slot_acts = np.empty((n_slots, chunk * n_hidden), dtype)
    slot_x = np.empty((n_slots, chunk * X.shape[1] if order.shape[0] > 0 else 0), dtype)
    W = weight_view(theta, sizes, 0)
    W_t = np.empty((sizes[0], sizes[1]), dtype)
    if products[0] == SIMD and min(m, chunk) >= SIMD_MIN_ROWS:
        transpose_into(W, W_t)
    b = bias_view(theta, sizes, 0)
    if n_slots == 1 or not parallel:
        for s in range(n_slots):
            hidden_sum_slot(s, n_slots, chunk, W, W_t, b, activations[0], products[0], X, order,
                            slot_x[s], slot_acts[s], slot_sum[s])
    else:
        hidden_sums_parallel(n_slots, chunk, W, W_t, b, activations[0], products[0], X, order,
                             slot_x, slot_acts, slot_sum)
    inv_m = dtype.type(1) / dtype.type(m)
    for j in range(n_hidden):
        total = dtype.type(0)
        for s in range(n_slots):
            total += slot_sum[s, j]
        rho_hat[j] = total * inv_m


@kernel()
def sparsity_terms(rho_hat, rho, beta, delta):
    """The sparse autoencoder's terms from ρ̂ (float64): δ_j = β(−ρ/ρ̂_j +
    (1−ρ)/(1−ρ̂_j)) into ``delta`` (the network's dtype), and returns
    (ok, β Σ_j KL(ρ ‖ ρ̂_j)) in float64; ok is False when some ρ̂_j is not
    strictly inside (0, 1). One routine for train and train_many."""
    kl = 0.0
    for j in range(rho_hat.shape[0]):
        r = rho_hat[j]
        if not (r > 0.0 and r < 1.0):
            return False, 0.0
        kl += rho * np.log(rho / r) + (1.0 - rho) * np.log((1.0 - rho) / (1.0 - r))
        delta[j] = beta * (-rho / r + (1.0 - rho) / (1.0 - r))
    return True, beta * kl


# --------------------------------------------------------------------------
# Mini-batch stochastic gradient descent: one epoch in one call
# --------------------------------------------------------------------------
@kernel()
def gather_rows(X, order, start, rows, out):
    """out[r] = X[order[start + r]] for r < rows; returns the filled view."""
    n = X.shape[1]
    view = block(out, 0, (rows, n))
    for r in range(rows):
        src = order[start + r]
        for j in range(n):
            view[r, j] = X[src, j]
    return view


# Update rules, shared by the full-batch trainer and the mini-batch epoch.
PLAIN, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3


@kernel(strict=True)  # IEEE as written: the same rounding in train and train_many
def optimizer_step(theta, grad, kind, learning_rate, momentum, beta1, beta2, epsilon,
                   state, step):
    """θ := θ + update(∇J). ``grad`` holds ∂J/∂θ (already with λW); ``state``
    (2, n_params) holds the velocity or Adam's two moments, ``step[0]`` counts
    updates.

    plain     θ −= α g                                       (the seed)
    momentum  v = μv − α g;  θ += v
    nesterov  v = μv − α g;  θ += μv − α g                   (Sutskever et al.)
    adam      m = β₁m + (1−β₁)g;  s = β₂s + (1−β₂)g²;
              θ −= α √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√s + ε)       (Kingma & Ba)
    """
    step[0] += 1
    n = theta.shape[0]
    if kind == PLAIN:
        for p in range(n):
            theta[p] -= learning_rate * grad[p]
    elif kind == MOMENTUM or kind == NESTEROV:
        v = state[0]
        for p in range(n):
            v[p] = momentum * v[p] - learning_rate * grad[p]
            if kind == NESTEROV:
                theta[p] += momentum * v[p] - learning_rate * grad[p]
            else:
                theta[p] += v[p]
    else:
        # β₁, β₂ may arrive as float64 for a float32 θ (scikit-learn's float32
        # Adam): 1 − β and the bias correction are then formed from them in
        # float64 and rounded once to θ's dtype, and the loop stays in θ's
        # dtype. With β in θ's dtype every value is what it always was.
        dt = theta.dtype.type
        beta_one = type(beta2)(1)
        t = type(beta2)(step[0])
        rate = dt(learning_rate * np.sqrt(beta_one - beta2 ** t) / (beta_one - beta1 ** t))
        b1, b2 = dt(beta1), dt(beta2)
        c1, c2 = dt(beta_one - beta1), dt(beta_one - beta2)
        m1 = state[0]
        m2 = state[1]
        for p in range(n):
            g = grad[p]
            m1[p] = b1 * m1[p] + c1 * g
            m2[p] = b2 * m2[p] + c2 * g * g
            theta[p] -= rate * m1[p] / (np.sqrt(m2[p]) + epsilon)


# How a run of full-batch steps ended (:func:`full_batch_steps`).
STEPS_OK, NONFINITE_GRADIENT, NONFINITE_UPDATE, BAD_SPARSITY = 0, 1, 2, 3


@kernel()
def finite_float(x):
    """Whether x is finite, as |x| ≤ the largest float64 — a comparison no
    fastmath rewrite can fold. numba's np.isfinite(x) is (x − x) == (x − x),
    and with ``reassoc`` LLVM may fold x − x to 0 when x is a sum: inside
    full_batch_steps a J of inf (with a finite gradient) passed as finite."""
    return abs(x) <= 1.7976931348623157e308


@kernel()
def all_finite_1d(a):
    for p in range(a.shape[0]):
        if not np.isfinite(a[p]):
            return False
    return True


@kernel()
def full_batch_steps(theta, sizes, activations, products, loss, X, Y, order, weight_decay,
                     rho, beta, rates, kind, momentum, beta1, beta2, epsilon, moments, step,
                     want_gradient, chunk, max_slots, width, costs):
    """``rates.shape[0]`` full-batch steps of one network on the calling
    thread, step t with α = rates[t]: J and ∇J at θ over the rows ``order``
    of X, Y (empty: all of them, read in place), with the sparsity term
    when β ≠ 0, then :func:`optimizer_step`. ``costs[t]`` = J (float64).

    Returns (steps done, how it ended). It ends early at the first step
    where ρ̂ leaves (0, 1) (BAD_SPARSITY), where J or ∇J is not finite
    (NONFINITE_GRADIENT: θ untouched), or where the update leaves θ not
    finite (NONFINITE_UPDATE: θ and the moments restored, the step count
    not); ``costs`` then holds that step's J where it was computed.

    ``fastbp.train`` runs its full-batch steps here, in blocks, when a step
    is too small for threads, and ``train_many`` runs each network's steps
    here: one routine, so both end on the same bits as a step-by-step loop
    of ``cost_and_gradient_rows`` and ``optimizer_step``. ``want_gradient``
    (True) arrives as an argument, as in that loop, not as a constant the
    compiler could fold.
    """
    n_params = theta.shape[0]
    dtype = theta.dtype
    n_hidden = sizes[1] if sizes.shape[0] > 2 else 0
    m = n_examples(X, order)
    workspace = np.empty((min(max_slots, (m + chunk - 1) // chunk), width), dtype)
    grad = np.empty(n_params, dtype)
    previous = np.empty(n_params, dtype)
    previous_moments = np.empty((2, n_params), dtype)
    rho_hat = np.empty(n_hidden, dtype)
    r = np.empty(n_hidden, np.float64)
    sparse = np.empty(n_hidden if beta != 0.0 else 0, dtype)
    for t in range(rates.shape[0]):
        sparsity_cost = 0.0
        if beta != 0.0:
            mean_activation_rows(theta, sizes, activations, products, X, order, chunk,
                                 max_slots, False, rho_hat)
            for j in range(n_hidden):
                r[j] = np.float64(rho_hat[j])
            ok, sparsity_cost = sparsity_terms(r, rho, beta, sparse)
            if not ok:
                return t, BAD_SPARSITY
        previous[:] = theta
        previous_moments[:] = moments
        J = np.float64(cost_and_gradient_rows(
            theta, sizes, activations, products, loss, X, Y, order, weight_decay, sparse,
            want_gradient, False, m, chunk, max_slots, 0, workspace, grad)) + sparsity_cost
        costs[t] = J
        if not (finite_float(J) and all_finite_1d(grad)):
            return t, NONFINITE_GRADIENT
        optimizer_step(theta, grad, kind, rates[t], momentum, beta1, beta2, epsilon, moments,
                       step)
        if not all_finite_1d(theta):
            theta[:] = previous
            moments[:] = previous_moments
            return t, NONFINITE_UPDATE
    return rates.shape[0], STEPS_OK


#: A mini-batch big enough to share (see :mod:`fastbp._threads`) is cut into
#: this many contiguous parts, one per thread, each with its own gradient
#: buffer; the parts are summed in order. The number of parts depends on the
#: batch's work only (never the thread count), so the result is bit-identical
#: for any number of threads; a small batch is one part.
BATCH_PARTS = 2


@kernel()
def minibatch_part(theta, theta_t, sizes, activations, products, loss, X, Y, order, shuffled,
                   lo, hi, capacity, check, acts, deltas, xb, yb, grad):
    """ΔW, Δb of rows lo … hi−1 of the epoch's order into ``grad`` (zeroed
    first); returns their summed cost. With ``check``, each chunk's rows of
    X and Y are checked finite first, as they come into cache for it; at
    the first NaN or ±Inf the part stops and returns NaN."""
    dtype = theta.dtype
    for p in range(grad.shape[0]):
        grad[p] = dtype.type(0)
    no_sparsity = np.empty(0, dtype)
    cost = dtype.type(0)
    for start in range(lo, hi, capacity):
        rows = min(capacity, hi - start)
        if shuffled:
            x = gather_rows(X, order, start, rows, xb)
            y = gather_rows(Y, order, start, rows, yb)
        else:
            x = data_rows(X, start, rows)
            y = data_rows(Y, start, rows)
        if check and first_not_finite(x, y, theta[:0]) != 0:
            return dtype.type(np.nan)
        cost += backprop_chunk(theta, theta_t, sizes, activations, products, loss, x, y,
                               no_sparsity, acts, deltas, capacity, grad)
    return cost


@kernel()
def minibatch_epoch_kernel(theta, sizes, activations, products, loss, X, Y, order, shuffled,
                           batch_size, parts, weight_decay, chunk, kind, learning_rate, momentum,
                           beta1, beta2, epsilon, state, step, check, parallel):
    """:func:`minibatch_epoch` (each batch's parts in parallel if ``parallel``)."""
    return minibatch_epoch(theta, sizes, activations, products, loss, X, Y, order, shuffled,
                           batch_size, parts, weight_decay, chunk, kind, learning_rate, momentum,
                           beta1, beta2, epsilon, state, step, check, parallel)


@kernel(parallel=True)
def minibatch_parts_parallel(n_parts, theta, theta_t, sizes, activations, products, loss, X, Y,
                             order, shuffled, first, size, capacity, check, acts, deltas, xb,
                             yb, part_grad, part_cost):
    """The BATCH_PARTS parts of one batch, one per thread."""
    for p in prange(n_parts):
        part_cost[p] = minibatch_part(
            theta, theta_t, sizes, activations, products, loss, X, Y, order, shuffled,
            first + p * size // n_parts, first + (p + 1) * size // n_parts, capacity, check,
            acts[p], deltas[p], xb[p], yb[p], part_grad[p])


@kernel()
def minibatch_epoch(theta, sizes, activations, products, loss, X, Y, order, shuffled,
                    batch_size, parts, weight_decay, chunk, kind, learning_rate, momentum,
                    beta1, beta2, epsilon, state, step, check, parallel):
    """One pass over the data in mini-batches of ``batch_size`` examples.

    For each batch B (rows ``order[k·b : (k+1)·b]`` when ``shuffled``, else
    consecutive rows) the gradient of the seed's J with m = |B|,
    g = ((1/|B|) ΔW + λW, (1/|B|) Δb), then one :func:`optimizer_step`
    (for ``PLAIN`` that is the seed's W := W − α g). A batch's ΔW, Δb are
    computed in ``parts`` parts (1, or BATCH_PARTS for a batch worth sharing;
    in parallel if ``parallel``, else in turn on this thread) and summed in
    part order, so both give the same bits.
    The epoch has len(order) examples (X's rows, or the rows order lists).

    Returns the epoch's mean per-example cost (1/m) Σ_B |B| J_B, where J_B is
    batch B's cost at θ before its update — its data term (1/|B|) Σ_{k∈B} J_k
    plus the decay term (λ/2) Σ_l ‖W^(l)‖² — so every example counts once and
    a short last batch weighs only its |B|/m (an unweighted mean over batches
    would over-weight it).

    With ``check``, every batch's rows of X and Y are checked finite as the
    batch reads them (:func:`minibatch_part`); the epoch stops at the first
    batch that holds a NaN or ±Inf, before its update, and returns NaN (the
    caller then restores θ and says which array holds it).
    """
    dtype = theta.dtype
    zero = dtype.type(0)
    half = dtype.type(0.5)
    m = order.shape[0]
    n_params = theta.shape[0]
    n_parts = parts if batch_size >= 2 * parts else 1
    capacity = min(chunk, (batch_size + n_parts - 1) // n_parts)
    n_work = work_size(sizes, capacity)
    acts = np.empty((n_parts, n_work), dtype)
    deltas = np.empty((n_parts, n_work), dtype)
    xb = np.empty((n_parts, capacity * X.shape[1]), dtype)
    yb = np.empty((n_parts, capacity * Y.shape[1]), dtype)
    part_grad = np.empty((n_parts if n_parts > 1 else 0, n_params), dtype)
    part_cost = np.zeros(n_parts, dtype)
    grad = np.empty(n_params, dtype)
    theta_t = np.empty_like(theta)
    n_batches = (m + batch_size - 1) // batch_size
    total = zero
    for k in range(n_batches):
        first = k * batch_size
        size = min(batch_size, m - first)
        transpose_weights_into(theta, sizes, products, capacity, theta_t)
        if n_parts == 1:  # the batch's ΔW, Δb straight into grad
            cost = minibatch_part(theta, theta_t, sizes, activations, products, loss, X, Y,
                                  order, shuffled, first, first + size, capacity, check, acts[0],
                                  deltas[0], xb[0], yb[0], grad)
        else:
            if parallel:
                minibatch_parts_parallel(n_parts, theta, theta_t, sizes, activations, products,
                                         loss, X, Y, order, shuffled, first, size, capacity,
                                         check, acts, deltas, xb, yb, part_grad, part_cost)
            else:
                for p in range(n_parts):
                    part_cost[p] = minibatch_part(
                        theta, theta_t, sizes, activations, products, loss, X, Y, order,
                        shuffled, first + p * size // n_parts,
                        first + (p + 1) * size // n_parts, capacity, check, acts[p], deltas[p],
                        xb[p], yb[p], part_grad[p])
            cost = part_cost[0]
            for p in range(1, n_parts):
                cost += part_cost[p]
            for q in range(n_params):
                g = part_grad[0, q]
                for p in range(1, n_parts):
                    g += part_grad[p, q]
                grad[q] = g
        if check and cost != cost:
            return cost  # a batch held a NaN or ±Inf (or the cost is NaN): no update
        inv_b = dtype.type(1) / dtype.type(size)
        decay = apply_weight_decay(theta, sizes, inv_b, weight_decay, True, grad)
        total += dtype.type(size) * (cost * inv_b + half * weight_decay * decay)  # |B| J_B
        optimizer_step(theta, grad, kind, learning_rate, momentum, beta1, beta2, epsilon,
                       state, step)
    return total / dtype.type(m)
