"""Model files: bit-identical round trips, atomic writes, and every kind of bad
file refused with a ModelFileError (never another exception, never a crash,
never an unpickle)."""

import io
import os
import pathlib
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import io as model_io
from fastbp.io import ModelFileError

ARCHITECTURES = [
    ([3, 2], "sigmoid"),
    ([5, 4, 3], ["tanh", "sigmoid"]),
    ([7, 6, 5, 4, 3], ["relu", "identity", "tanh", "sigmoid"]),
    ([70, 80, 3], "sigmoid"),  # ≥ 4096 weights: a BLAS layer
]


def random_net(sizes, activations, dtype, loss, seed=0):
    net = fastbp.Network(sizes, activations=activations, dtype=dtype, loss=loss, seed=seed)
    # every bit of every parameter matters: full-precision values of all magnitudes
    rng = np.random.default_rng(seed + 1)
    net.theta = (rng.standard_normal(net.n_params) * 10.0 ** rng.integers(-8, 3, net.n_params))
    return net


def same_network(a, b):
    return (a.layer_sizes == b.layer_sizes and a.activations == b.activations
            and a.loss == b.loss and a.dtype == b.dtype
            and a.theta.dtype == b.theta.dtype
            and a.theta.tobytes() == b.theta.tobytes())


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("sizes, activations", ARCHITECTURES)
def test_round_trip_is_bit_identical(tmp_path, dtype, loss, sizes, activations):
    if loss == "cross_entropy" and not isinstance(activations, str):
        activations = activations[:-1] + ["softmax"]
    net = random_net(sizes, activations, dtype, loss)
    path = tmp_path / "model.npz"
    model_io.save(net, path)
    back = model_io.load(path)
    assert isinstance(back, fastbp.Network)
    assert same_network(net, back)
    assert back.theta.view(np.uint8).tobytes() == net.theta.view(np.uint8).tobytes()
    X = np.random.default_rng(2).random((300, sizes[0])).astype(dtype)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    # the loaded network is independent of the saved one
    back.theta[0] += 1
    assert back.theta[0] != net.theta[0]


def test_round_trip_of_a_trained_network(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((64, 6))
    net = fastbp.Network([6, 4, 6], seed=3)
    fastbp.train(net, X, X, learning_rate=1.0, iterations=5)
    model_io.save(net, tmp_path / "m.npz")
    back = model_io.load(str(tmp_path / "m.npz"))
    assert same_network(net, back)
    assert back.cost(X, X) == net.cost(X, X)


def test_file_contents_follow_the_documented_format(tmp_path):
    net = random_net([5, 4, 3], "tanh", np.float32, "cross_entropy")
    model_io.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(model_io.KEYS)
        assert z["format"].shape == () and z["format"].dtype.kind == "U"
        assert str(z["format"]) == "fastbp-model"
        assert z["format_version"].shape == () and int(z["format_version"]) == 1
        assert z["layer_sizes"].dtype == np.int64 and z["layer_sizes"].tolist() == [5, 4, 3]
        assert z["activations"].dtype.kind == "U"
        assert z["activations"].tolist() == ["tanh", "softmax"]
        assert str(z["loss"]) == "cross_entropy" and str(z["dtype"]) == "float32"
        assert z["theta"].dtype == np.float32 and z["theta"].shape == (net.n_params,)


def test_save_writes_exactly_at_the_path_without_appending_npz(tmp_path):
    net = random_net([3, 2], "sigmoid", np.float64, "squared")
    for name in ("model", "model.bin", "model.NPZ"):
        model_io.save(net, tmp_path / name)
        assert (tmp_path / name).is_file()
        assert same_network(net, model_io.load(tmp_path / name))
    assert sorted(os.listdir(tmp_path)) == ["model", "model.NPZ", "model.bin"]


def test_save_overwrites_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "m.npz"
    a = random_net([3, 2], "sigmoid", np.float64, "squared", seed=1)
    b = random_net([4, 3, 2], "tanh", np.float32, "squared", seed=2)
    model_io.save(a, path)
    model_io.save(b, path)
    assert same_network(b, model_io.load(path))
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = random_net([3, 2], "sigmoid", np.float64, "squared", seed=1)
    model_io.save(old, path)
    before = path.read_bytes()

    def crash_half_way(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_io.np, "savez", crash_half_way)
    with pytest.raises(OSError, match="No space left"):
        model_io.save(random_net([4, 2], "sigmoid", np.float64, "squared"), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_refuses_what_could_not_be_loaded(tmp_path):
    with pytest.raises(TypeError, match="Network"):
        model_io.save(np.zeros(3), tmp_path / "m.npz")
    net = random_net([3, 2], "sigmoid", np.float64, "squared")
    net.theta[...] = 0
    net._theta[1] = np.nan  # bypassing the setter's check
    with pytest.raises(ValueError, match="NaN"):
        model_io.save(net, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    assert os.listdir(tmp_path) == []


def test_compressed_archives_load_too(tmp_path):
    net = random_net([5, 4, 3], "sigmoid", np.float64, "squared")
    np.savez_compressed(tmp_path / "c.npz", **valid_arrays(net))
    assert same_network(net, model_io.load(tmp_path / "c.npz"))


# --------------------------------------------------------------- bad files
def valid_arrays(net):
    return {
        "format": np.array("fastbp-model"),
        "format_version": np.array(1, dtype=np.int64),
        "layer_sizes": np.array(net.layer_sizes, dtype=np.int64),
        "activations": np.array(list(net.activations)),
        "loss": np.array(net.loss),
        "dtype": np.array(net.dtype.name),
        "theta": net.theta.copy(),
    }


@pytest.fixture
def net():
    return random_net([4, 3, 2], "sigmoid", np.float64, "squared")


@pytest.fixture
def good_bytes(tmp_path, net):
    model_io.save(net, tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


def refused(path, match=None):
    """load(path) raises ModelFileError — not any other exception — whose
    message is one line naming the file."""
    try:
        model_io.load(path)
    except ModelFileError as exc:
        msg = str(exc)
        assert isinstance(exc, ValueError)
        assert "\n" not in msg and str(path) in msg and msg.startswith("model file ")
        if match is not None:
            assert match in msg, msg
        return msg
    raise AssertionError(f"load({path}) did not raise ModelFileError")


def write_model(path, net, **changes):
    """A model file with entries changed (value) or removed (None)."""
    arrays = valid_arrays(net)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def test_missing_file_and_directory(tmp_path):
    refused(tmp_path / "nope.npz", "no such file")
    refused(tmp_path, "directory")


def test_empty_text_npy_and_foreign_files(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    refused(tmp_path / "empty.npz", "empty")
    (tmp_path / "text.npz").write_text("layer_sizes = 64, 25, 64\ntheta = ...\n")
    refused(tmp_path / "text.npz", "not a .npz archive")
    np.save(tmp_path / "single.npy", np.zeros(3))
    refused(tmp_path / "single.npy", ".npy array")
    np.savez(tmp_path / "data.npz", X=np.zeros((3, 2)), Y=np.ones((3, 1)))
    refused(tmp_path / "data.npz", "not a fastbp model")
    np.savez(tmp_path / "nothing.npz")
    refused(tmp_path / "nothing.npz", "not a fastbp model")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("format.npy", b"hello, not an array")
    refused(tmp_path / "other.zip", "not a .npy array")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    (tmp_path / "noise.npz").write_bytes(noise)
    refused(tmp_path / "noise.npz")
    # the same behind a zip signature and behind a npy signature
    (tmp_path / "zipnoise.npz").write_bytes(b"PK\x03\x04" + noise)
    refused(tmp_path / "zipnoise.npz")
    (tmp_path / "npynoise.npz").write_bytes(b"\x93NUMPY" + noise)
    refused(tmp_path / "npynoise.npz")


def test_truncated_at_every_byte(tmp_path, good_bytes):
    path = tmp_path / "cut.npz"
    for n in range(len(good_bytes)):
        path.write_bytes(good_bytes[:n])
        refused(path)


def test_single_bit_flips_are_refused_or_harmless(tmp_path, net, good_bytes):
    """A flipped bit anywhere either makes the file refused (CRC, sizes, names,
    headers) or lands where it does not matter (timestamps, attributes):
    never another exception, never a different network."""
    path = tmp_path / "flip.npz"
    loaded = 0
    for k in range(len(good_bytes)):
        damaged = bytearray(good_bytes)
        damaged[k] ^= 1 << (k % 8)
        path.write_bytes(bytes(damaged))
        try:
            back = model_io.load(path)
        except ModelFileError:
            continue
        loaded += 1
        assert same_network(net, back), f"flipping a bit of byte {k} changed the network"
    assert loaded < len(good_bytes) / 2


class Tripwire:
    """Unpickling this touches a file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("key", ["format", "theta", "layer_sizes", "activations"])
def test_pickled_object_arrays_are_refused_unread(tmp_path, net, key):
    marker = tmp_path / f"unpickled-{key}"
    trap = np.empty(1, dtype=object)
    trap[0] = Tripwire(marker)
    path = write_model(tmp_path / "pickle.npz", net, **{key: trap})
    refused(path, "pickle")
    assert not marker.exists(), "load() unpickled an object array"
    # the control: the file really does run code when unpickled
    with np.load(path, allow_pickle=True) as z:
        z[key]
    assert marker.exists()


@pytest.mark.parametrize("key", model_io.KEYS)
def test_missing_entries(tmp_path, net, key):
    path = write_model(tmp_path / "m.npz", net, **{key: None})
    refused(path, key)


def test_extra_and_duplicate_entries(tmp_path, net):
    refused(write_model(tmp_path / "extra.npz", net, notes=np.array("hi")), "unexpected")
    path = write_model(tmp_path / "dup.npz", net)
    with pytest.warns(UserWarning, match="Duplicate"):
        with zipfile.ZipFile(path, "a") as z:
            buf = io.BytesIO()
            np.save(buf, np.zeros(net.n_params))
            z.writestr("theta.npy", buf.getvalue())
    refused(path, "duplicate")


@pytest.mark.parametrize("version, match", [
    (np.array(2), "newer"), (np.array(99, np.uint8), "newer"), (np.array(0), "format version 0"),
    (np.array(-1), "format version -1"), (np.array("1"), "format_version has dtype"),
    (np.array(1.0), "format_version has dtype"), (np.array([1]), "format_version has shape"),
])
def test_format_versions(tmp_path, net, version, match):
    msg = refused(write_model(tmp_path / "v.npz", net, format_version=version), match)
    if "newer" in match:
        assert "reads format version 1" in msg and "upgrade" in msg


@pytest.mark.parametrize("changes, match", [
    # format
    (dict(format=np.array("fastbp-modle")), "not a fastbp model"),
    (dict(format=np.array(b"fastbp-model")), "format has dtype"),
    (dict(format=np.array(["fastbp-model"])), "format has shape"),
    # loss and dtype
    (dict(loss=np.array("hinge")), "loss is 'hinge'"),
    (dict(loss=np.array(["squared"])), "loss has shape"),
    (dict(dtype=np.array("float16")), "dtype is 'float16'"),
    (dict(dtype=np.array(64)), "dtype has dtype"),
    # layer sizes
    (dict(layer_sizes=np.array([4, -3, 2])), "positive"),
    (dict(layer_sizes=np.array([4, 0, 2])), "positive"),
    (dict(layer_sizes=np.array([4])), "at least 2"),
    (dict(layer_sizes=np.array([], np.int64)), "at least 2"),
    (dict(layer_sizes=np.array([4.0, 3.0, 2.0])), "layer_sizes has dtype"),
    (dict(layer_sizes=np.array([[4, 3, 2]])), "layer_sizes has shape"),
    (dict(layer_sizes=np.array(["4", "3", "2"])), "layer_sizes has dtype"),
    (dict(layer_sizes=np.array([4, 3, 3])), "theta has shape"),
    # activations
    (dict(activations=np.array(["sigmoid"])), "activations has 1 entries"),
    (dict(activations=np.array(["sigmoid"] * 3)), "activations has 3 entries"),
    (dict(activations=np.array(["sigmoid", "swish"])), "'swish'"),
    (dict(activations=np.array(["sigmoid", "softmax"])), "'softmax'"),
    (dict(activations=np.array([b"sigmoid", b"sigmoid"])), "activations has dtype"),
    (dict(activations=np.array("sigmoid")), "activations has shape"),
    (dict(loss=np.array("cross_entropy")), "must be 'softmax'"),
    # theta
    (dict(theta=np.zeros(5)), "theta has shape (5,)"),
    (dict(theta=np.zeros((1, 23))), "theta has shape"),
    (dict(theta=np.zeros(23, np.float32)), "theta has dtype float32"),
    (dict(theta=np.zeros(23, np.float16)), "theta has dtype float16"),
    (dict(theta=np.zeros(23, np.int64)), "theta has dtype"),
    (dict(theta=np.zeros(23, np.complex128)), "theta has dtype"),
    (dict(theta=np.full(23, np.nan)), "NaN"),
    (dict(theta=np.r_[np.zeros(22), np.inf]), "NaN or Inf"),
    (dict(theta=np.r_[-np.inf, np.zeros(22)]), "NaN or Inf"),
])
def test_bad_entries(tmp_path, net, changes, match):
    assert net.n_params == 23
    refused(write_model(tmp_path / "bad.npz", net, **changes), match)


def test_dtype_entry_and_theta_must_agree(tmp_path):
    net32 = random_net([4, 3, 2], "sigmoid", np.float32, "squared")
    path = write_model(tmp_path / "m.npz", net32, dtype=np.array("float64"))
    refused(path, "theta has dtype float32, but the model's dtype is 'float64'")


def test_big_endian_theta_loads_exactly(tmp_path, net):
    path = write_model(tmp_path / "be.npz", net, theta=net.theta.astype(">f8"))
    back = model_io.load(path)
    assert back.theta.dtype == np.float64 and same_network(net, back)


def test_a_lying_header_allocates_nothing(tmp_path, net):
    """Huge layer sizes and a theta header that claims ~8 TB: refused from the
    headers and sizes, before any allocation."""
    sizes = np.array([10**6, 10**6], np.int64)
    n = 10**6 * (10**6 + 1)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
    path = write_model(tmp_path / "huge.npz", net, layer_sizes=sizes,
                       activations=np.array(["sigmoid"]), theta=None)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("theta.npy", header.getvalue() + b"\0" * 64)
    refused(path, "theta declares shape")


def test_a_member_that_is_not_npy(tmp_path, net):
    path = write_model(tmp_path / "m.npz", net, theta=None)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("theta.npy", b"just some bytes")
    refused(path, "theta is not a .npy array")


def test_unreadable_file(tmp_path, good_bytes):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = tmp_path / "locked.npz"
    path.write_bytes(good_bytes)
    path.chmod(0)
    try:
        refused(path, "can not be read")
    finally:
        path.chmod(0o644)
