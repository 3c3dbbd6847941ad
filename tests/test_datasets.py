"""The demo's data: patches of a real photograph, whitened, and the measure of
how localized the learned filters are (issue 12, item 4)."""

import numpy as np
import pytest

from fastbp import cli, datasets


def test_photo_is_a_real_photograph_from_matplotlib():
    img = datasets.photo()
    assert img.ndim == 2 and img.shape == (600, 512)
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.1


def test_whitening_flattens_the_spectrum():
    img = datasets.photo()
    white = datasets.whiten_image(img)
    assert abs(white.std() - 1) < 1e-12

    def high_share(a):
        power = np.abs(np.fft.fft2(a - a.mean())) ** 2
        f = np.hypot(*np.meshgrid(np.fft.fftfreq(a.shape[1]), np.fft.fftfreq(a.shape[0])))
        return power[(f > 0.1) & (f < 0.25)].sum() / power.sum()

    # a natural image's power sits at low frequencies; whitened, much more is higher up
    assert high_share(white) > 5 * high_share(img[8:-8, 8:-8])


def test_photo_patches_are_normalised_like_sample_images():
    X = datasets.photo_patches(2000, seed=3)
    assert X.shape == (2000, 64) and X.dtype == np.float64
    assert X.min() >= 0.1 - 1e-12 and X.max() <= 0.9 + 1e-12
    assert abs(X.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(X, datasets.photo_patches(2000, seed=3))
    assert not np.array_equal(X, datasets.photo_patches(2000, seed=4))


def test_filter_locality():
    rng = np.random.default_rng(0)
    random = datasets.filter_locality(rng.normal(size=(200, 64)))
    assert 0.6 < np.median(random) < 0.8
    edge = np.zeros((1, 8, 8))
    edge[0, 2:6, 3], edge[0, 2:6, 4] = 1.0, -1.0          # a small vertical edge
    assert datasets.filter_locality(edge.reshape(1, 64))[0] == pytest.approx(1.0)
    assert datasets.filter_locality(np.ones((1, 64)))[0] == pytest.approx(0.25)


def test_demo_on_synthetic_images_still_works(tmp_path, capsys):
    assert cli.main(["demo", "--images", "synthetic", "--iterations", "2", "--patches", "300",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "generated in code" in out and "16 strongest pixels" in out


def test_demo_reports_and_draws_the_locality(tmp_path, capsys):
    assert cli.main(["demo", "--iterations", "3", "--patches", "300",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "grace_hopper.jpg" in out
    line = [l for l in out.splitlines() if "16 strongest pixels" in l][0]
    assert 0 < float(line.split(":")[1].split()[0]) <= 1
    assert (tmp_path / "features.png").stat().st_size > 1000
