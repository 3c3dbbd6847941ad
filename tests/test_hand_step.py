"""One batch gradient-descent step on a 2-2-1 sigmoid network, worked by hand
(scikit-learn's test_fit habit). Every number in the comments was computed
with the seed's formulas on paper-sized arithmetic; the assertions check the
kernels against them."""

import numpy as np
import pytest

import fastbp


def test_one_gradient_descent_step_by_hand():
    net = fastbp.Network([2, 2, 1])
    net.weights[0][...] = [[0.1, 0.2], [0.3, 0.4]]
    net.biases[0][...] = [0.5, 0.6]
    net.weights[1][...] = [[0.7, 0.8]]
    net.biases[1][...] = [0.9]
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.array([[1.0], [0.0]])
    lam, alpha, m = 0.1, 0.5, 2

    # Example 1: x = (1, 0), y = 1
    #   z2 = W1 x + b1 = (0.1+0.5, 0.3+0.6) = (0.6, 0.9)
    #   a2 = σ(z2)     = (0.645656, 0.710950)
    #   z3 = 0.7·0.645656 + 0.8·0.710950 + 0.9 = 1.920719,  a3 = σ(z3) = 0.872219
    #   δ3 = −(y − a3)·a3(1 − a3) = −0.127781·0.111470 = −0.014242
    #   δ2 = W2ᵀ δ3 • a2(1 − a2) = (0.7·−0.014242·0.228789, 0.8·−0.014242·0.205499)
    #      = (−0.0022808, −0.0023413)
    # Example 2: x = (0, 1), y = 0
    #   z2 = (0.2+0.5, 0.4+0.6) = (0.7, 1.0),  a2 = (0.668188, 0.731059)
    #   z3 = 0.7·0.668188 + 0.8·0.731059 + 0.9 = 1.952578,  a3 = 0.875728
    #   δ3 = −(0 − 0.875728)·0.875728·0.124272 = 0.095304
    #   δ2 = (0.7·0.095304·0.221713, 0.8·0.095304·0.196612) = (0.014791, 0.014990)
    # Accumulate ΔW = Σ δ aᵀ, Δb = Σ δ:
    #   ΔW1 = [[−0.0022808·1, 0.014791·1], [−0.0023413·1, 0.014990·1]]
    #   Δb1 = (−0.0022808 + 0.014791, −0.0023413 + 0.014990) = (0.012510, 0.012649)
    #   ΔW2 = (−0.014242·0.645656 + 0.095304·0.668188, −0.014242·0.710950 + 0.095304·0.731059)
    #       = (0.054486, 0.059548)
    #   Δb2 = −0.014242 + 0.095304 = 0.081063
    # Cost: J = (½·0.127781² + ½·0.875728²)/2 + (0.1/2)(0.01+0.04+0.09+0.16+0.49+0.64)
    #         = (0.008164 + 0.383450)/2 + 0.05·1.43 = 0.195807 + 0.0715 = 0.267307
    J, gW, gb = net.cost_and_gradient(X, Y, weight_decay=lam)
    assert J == pytest.approx(0.2673066889178559, rel=1e-12)
    np.testing.assert_allclose(gW[1], [[0.05448602167403879 / m + lam * 0.7,
                                        0.05954800307636658 / m + lam * 0.8]], rtol=1e-12)
    np.testing.assert_allclose(gb[1], [0.08106274673758083 / m], rtol=1e-12)

    history = fastbp.train(net, X, Y, learning_rate=alpha, weight_decay=lam, iterations=1)
    assert history == pytest.approx([0.2673066889178559], rel=1e-12)
    # W := W − α((1/m)ΔW + λW), b := b − α(1/m)Δb, e.g.
    #   W1[0,0] = 0.1 − 0.5·(−0.0022808/2 + 0.1·0.1) = 0.1 − 0.5·0.0088596 = 0.095570
    #   b2      = 0.9 − 0.5·0.081063/2 = 0.879734
    np.testing.assert_allclose(net.weights[0], [[0.09557019687499003, 0.1863022124920317],
                                                [0.2855853331896446, 0.37625240318456277]],
                               rtol=1e-12)
    np.testing.assert_allclose(net.biases[0], [0.4968724093670217, 0.5968377363742073], rtol=1e-12)
    np.testing.assert_allclose(net.weights[1], [[0.6513784945814902, 0.7451129992309083]],
                               rtol=1e-12)
    np.testing.assert_allclose(net.biases[1], [0.8797343133156048], rtol=1e-12)
