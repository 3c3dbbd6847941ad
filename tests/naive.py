"""Slow, obviously-correct references for the kernels (STUMPY's naive.py habit).

A plain vectorised numpy transcription of the matrix-vector form in
docs/math.md, sharing no code with fastbp's kernels.
"""

import numpy as np


def f(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "exp":  # the Poisson loss's output
        return np.exp(z)
    raise ValueError(name)


def f_prime(name, z, a):
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "identity":
        return np.ones_like(z)
    raise ValueError(name)


def forward(weights, biases, activations, X):
    """z^(l+1) = W^(l) a^(l) + b^(l), a^(l+1) = f(z^(l+1)); rows are examples."""
    a, z = [X], [None]
    for W, b, name in zip(weights, biases, activations):
        z.append(a[-1] @ W.T + b)
        a.append(f(name, z[-1]))
    return z, a


def cost_and_gradient(weights, biases, activations, X, Y, weight_decay=0.0, loss="squared",
                      sparsity_target=None, sparsity_weight=0.0):
    """J and (grad_W, grad_b) by the seed's matrix form, all m examples at once."""
    m = X.shape[0]
    z, a = forward(weights, biases, activations, X)
    h = a[-1]
    if loss == "squared":
        J = 0.5 * np.sum((h - Y) ** 2) / m
        delta = -(Y - h) * f_prime(activations[-1], z[-1], h)  # δ^(n_l)
    else:
        J = -np.sum(Y * np.log(h)) / m
        delta = h * Y.sum(axis=1, keepdims=True) - Y  # = h − y for rows summing to 1
    J += weight_decay / 2 * sum(np.sum(W ** 2) for W in weights)
    sparse = 0.0
    if sparsity_weight:
        rho, beta = sparsity_target, sparsity_weight
        rho_hat = a[1].mean(axis=0)
        J += beta * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
        sparse = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    grad_W, grad_b = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grad_W[l] = delta.T @ a[l] / m + weight_decay * weights[l]  # (1/m)ΔW + λW
        grad_b[l] = delta.sum(axis=0) / m                            # (1/m)Δb
        if l > 0:
            back = delta @ weights[l] + (sparse if l == 1 else 0.0)
            delta = back * f_prime(activations[l - 1], z[l], a[l])   # δ^(l)
    return J, grad_W, grad_b


def gradient_descent(weights, biases, activations, X, Y, learning_rate, weight_decay, iterations):
    """The seed's batch gradient descent, returning new parameters and J history."""
    weights = [W.copy() for W in weights]
    biases = [b.copy() for b in biases]
    history = []
    for _ in range(iterations):
        J, gW, gb = cost_and_gradient(weights, biases, activations, X, Y, weight_decay)
        history.append(J)
        for l in range(len(weights)):
            weights[l] -= learning_rate * gW[l]
            biases[l] -= learning_rate * gb[l]
    return weights, biases, history


def sgd_epoch(weights, biases, activations, X, Y, learning_rate, weight_decay, batch_size, order):
    """One epoch of mini-batch gradient descent over rows ``order``."""
    weights = [W.copy() for W in weights]
    biases = [b.copy() for b in biases]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        _, gW, gb = cost_and_gradient(weights, biases, activations, X[rows], Y[rows], weight_decay)
        for l in range(len(weights)):
            weights[l] -= learning_rate * gW[l]
            biases[l] -= learning_rate * gb[l]
    return weights, biases
