"""Model files: :func:`save` a :class:`~fastbp.Network` to a ``.npz`` archive and
:func:`load` it back, bit for bit.

A model file is a zip archive written by ``numpy.savez`` (never pickle) that
holds exactly these arrays:

==================  ==========================  =================================================
name                dtype, shape                value
==================  ==========================  =================================================
``format``          unicode, ()                 ``"fastbp-model"``
``format_version``  integer, ()                 ``1``
``layer_sizes``     int64, (n_l,)               (s_1, …, s_{n_l}), each ≥ 1, n_l ≥ 2
``activations``     unicode, (n_l − 1,)         one name per layer transition; with
                                                ``loss="cross_entropy"`` the last is ``"softmax"``
``loss``            unicode, ()                 ``"squared"`` or ``"cross_entropy"``
``dtype``           unicode, ()                 ``"float32"`` or ``"float64"``
``theta``           float32/float64, (n,)       the flat parameter vector θ (W^(1), b^(1), W^(2),
                                                b^(2), … each row-major), n = Σ s_{l+1}(s_l + 1),
                                                every entry finite, in the precision ``dtype``
==================  ==========================  =================================================

:func:`load` opens the archive with ``np.load(path, allow_pickle=False)`` and
checks every entry's npy header (dtype and shape) *before* reading its data,
so an object array is refused without being unpickled and a lying header can
not make it allocate memory. Every problem with a file raises
:class:`ModelFileError` (a ``ValueError``) with one line naming the file.
"""

import os
import tempfile
import zipfile

import numpy as np
import numpy.lib.format as npy_format

from .network import ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS, Network

__all__ = ["save", "load", "ModelFileError", "FORMAT", "FORMAT_VERSION",
           "SUPPORTED_FORMAT_VERSIONS"]

FORMAT = "fastbp-model"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
DTYPES = ("float32", "float64")
KEYS = ("format", "format_version", "layer_sizes", "activations", "loss", "dtype", "theta")

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_MAX_HEADER_SIZE = 10_000                     # numpy's own limit for untrusted npy headers
_MAX_DEFLATE_RATIO = 1100                     # deflate can not expand data more than ~1032×


class ModelFileError(ValueError):
    """A model file is missing, unreadable, corrupt, foreign or inconsistent.

    Attributes
    ----------
    path : str
        The file.
    problem : str
        What is wrong with it (the message without the file name).
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"model file {self.path!r}: {self.problem}")


# --------------------------------------------------------------------- save
def save(net, path):
    """Write ``net`` to ``path`` as a fastbp model file (see the module docstring).

    The file is written exactly at ``path`` (no ".npz" is appended) and
    atomically: the archive goes to a temporary file in the same directory
    that then replaces ``path``, so a crash never leaves a half-written model.

    Parameters
    ----------
    net : fastbp.Network
    path : str or os.PathLike

    Raises
    ------
    TypeError
        ``net`` is not a Network.
    ValueError
        ``net.theta`` holds NaN or Inf (such a file could not be loaded).
    OSError
        The file can not be written.
    """
    if not isinstance(net, Network):
        raise TypeError(f"save needs a fastbp.Network, got {type(net).__name__}")
    theta = np.ascontiguousarray(net.theta)
    if not np.isfinite(theta).all():
        raise ValueError("net.theta contains NaN or Inf; refusing to write a model file "
                         "that could not be loaded")
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "layer_sizes": np.array(net.layer_sizes, dtype=np.int64),
        "activations": np.array(list(net.activations), dtype=np.str_),
        "loss": np.array(net.loss),
        "dtype": np.array(net.dtype.name),
        "theta": theta,
    }
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary binary file next to ``path``, then
    move it to ``path`` with ``os.replace``; on any error ``path`` is untouched
    and the temporary file is removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _new_file_mode(path):
    """The mode ``open(path, "w")`` would give: the existing file's, else 0o666 & ~umask
    (mkstemp creates 0o600 files)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as f:  # reading the umask without changing it
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_directory(directory):
    """Make the rename durable (POSIX; a no-op where directories can not be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------- load
def load(path):
    """Read a model file written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    fastbp.Network
        Same layer sizes, activations, loss, dtype and bit-identical θ.

    Raises
    ------
    ModelFileError
        For every problem with the file: missing, unreadable, empty, not a
        .npz archive, truncated or corrupt, not a fastbp model, a format
        version this fastbp does not support, missing or extra entries, or any
        entry of the wrong type, shape or value.
    """
    try:
        name = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    _check_file(name)
    try:
        npz = np.load(name, allow_pickle=False)
    except ModelFileError:
        raise
    except OSError as exc:
        raise ModelFileError(name, f"can not be read: {_os_reason(exc)}") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, …
        raise ModelFileError(name, f"is not a valid .npz archive (truncated or corrupt?): "
                                   f"{_reason(exc)}") from None
    try:
        with npz:
            return _Reader(name, npz).network()
    except ModelFileError:
        raise
    except Exception as exc:  # corrupt zip members, CRC errors, MemoryError, …
        raise ModelFileError(name, f"is corrupt (truncated or damaged?): {_reason(exc)}") from None


def _check_file(name):
    """The file exists, is a regular file, and starts like a zip archive."""
    try:
        with open(name, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelFileError(name, "no such file") from None
    except IsADirectoryError:
        raise ModelFileError(name, "is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(name, f"can not be read: {_os_reason(exc)}") from None
    if not head:
        raise ModelFileError(name, "is empty (0 bytes); a model file is a .npz archive")
    if head.startswith(npy_format.MAGIC_PREFIX):
        raise ModelFileError(name, "is a single .npy array, not a fastbp model "
                                   "(.npz archive written by fastbp.io.save)")
    if not head.startswith(_ZIP_MAGICS):
        raise ModelFileError(name, "is not a .npz archive (fastbp model files are zip "
                                   "archives written by fastbp.io.save)")


class _Reader:
    """Reads and checks one entry at a time, header first."""

    def __init__(self, name, npz):
        self.name = name
        self.npz = npz
        self.file_size = os.path.getsize(name)
        members = npz.zip.namelist()
        keys = [m.removesuffix(".npy") for m in members]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            self.fail(f"has duplicate entries {duplicates}")
        self.members = dict(zip(keys, members))

    def fail(self, problem):
        raise ModelFileError(self.name, problem)

    def network(self):
        keys = set(self.members)
        if "format" not in keys:
            self.fail(f"is not a fastbp model file: it has no 'format' entry "
                      f"(entries: {sorted(keys) or 'none'})")
        fmt = self.string("format")
        if fmt != FORMAT:
            self.fail(f"is not a fastbp model file: format is {fmt!r}, expected {FORMAT!r}")
        if "format_version" not in keys:
            self.fail("has no 'format_version' entry")
        version = self.integer_scalar("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS:
            supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
            newer = " (written by a newer fastbp; upgrade fastbp to read it)" \
                if version > max(SUPPORTED_FORMAT_VERSIONS) else ""
            self.fail(f"has format version {version}{newer}; this fastbp reads "
                      f"format version {supported}")
        missing = [k for k in KEYS if k not in keys]
        if missing:
            self.fail(f"is missing entries {missing}")
        extra = sorted(keys - set(KEYS))
        if extra:
            self.fail(f"has unexpected entries {extra} (a version-{FORMAT_VERSION} model file "
                      f"holds exactly {list(KEYS)})")

        loss = self.string("loss")
        if loss not in LOSSES:
            self.fail(f"loss is {loss!r}, expected one of {sorted(LOSSES)}")
        dtype = self.string("dtype")
        if dtype not in DTYPES:
            self.fail(f"dtype is {dtype!r}, expected one of {list(DTYPES)}")

        sizes = self.array("layer_sizes", kinds="iu", ndim=1)
        if sizes.shape[0] < 2:
            self.fail(f"layer_sizes has {sizes.shape[0]} entries, expected at least 2 "
                      f"(input and output widths)")
        if np.any(sizes <= 0):
            self.fail(f"layer_sizes must all be positive, got {sizes.tolist()}")
        sizes = [int(s) for s in sizes]

        n_transitions = len(sizes) - 1
        activations = self.array("activations", kinds="U", ndim=1)
        if activations.shape[0] != n_transitions:
            self.fail(f"activations has {activations.shape[0]} entries; layer_sizes "
                      f"{sizes} needs {n_transitions} (one per layer transition)")
        activations = [str(a) for a in activations]
        for k, act in enumerate(activations):
            last = k == n_transitions - 1
            if last and loss in OUTPUT_ACTIVATIONS:
                if act != OUTPUT_ACTIVATIONS[loss]:
                    self.fail(f"activations[{k}] is {act!r}; with loss {loss!r} "
                              f"the output layer must be {OUTPUT_ACTIVATIONS[loss]!r}")
            elif act not in ACTIVATIONS:
                self.fail(f"activations[{k}] is {act!r}, expected one of {sorted(ACTIVATIONS)}")

        n_params = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(n_transitions))
        theta = self.array("theta", kinds="f", ndim=1, expect_shape=(n_params,),
                           shape_hint=f"layer_sizes {sizes} have {n_params} parameters")
        if theta.dtype.newbyteorder("=") != np.dtype(dtype):
            self.fail(f"theta has dtype {theta.dtype.name}, but the model's dtype is {dtype!r}")
        if not np.isfinite(theta).all():
            self.fail("theta contains NaN or Inf; every parameter must be finite")

        net = Network(sizes, activations=activations, loss=loss, dtype=dtype)
        net.theta = theta.astype(net.dtype, copy=False)  # exact: same precision
        return net

    # ---------------------------------------------------------------- entries
    def string(self, key):
        return str(self.array(key, kinds="U", ndim=0)[()])

    def integer_scalar(self, key):
        return int(self.array(key, kinds="iu", ndim=0)[()])

    def array(self, key, *, kinds, ndim, expect_shape=None, shape_hint=""):
        """The entry ``key``, after its header has shown the expected kind and shape
        and a data size consistent with the archive."""
        member = self.members[key]
        info = self.npz.zip.getinfo(member)
        dtype, shape = self.header(key, member, info)
        if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None \
                or dtype.subdtype is not None:
            self.fail(f"{key} has dtype {dtype}, expected {_KIND_NAMES[kinds]}")
        if len(shape) != ndim:
            what = "a scalar (shape ())" if ndim == 0 else f"a {ndim}-D array"
            self.fail(f"{key} has shape {shape}, expected {what}")
        if expect_shape is not None and shape != expect_shape:
            self.fail(f"{key} has shape {shape}, expected {expect_shape} ({shape_hint})")
        value = self.npz[key]
        if not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape != shape:
            self.fail(f"{key} could not be read as declared")
        return value

    def header(self, key, member, info):
        """(dtype, shape) from the npy header, with the member's size checked
        against them so reading the data reads the whole member (and so
        verifies its CRC) and allocates no more than the file can hold."""
        if info.flag_bits & 0x1:
            self.fail(f"{key} is encrypted")
        if info.compress_size > self.file_size:
            self.fail(f"{key} claims {info.compress_size} bytes but the file has "
                      f"{self.file_size} (truncated?)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            self.fail(f"{key} has inconsistent sizes in the archive directory (corrupt?)")
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            self.fail(f"{key} claims an implausible uncompressed size ({info.file_size} bytes)")
        with self.npz.zip.open(member) as fp:
            try:
                version = npy_format.read_magic(fp)
            except ValueError:
                self.fail(f"{key} is not a .npy array")
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(
                    fp, max_header_size=_MAX_HEADER_SIZE)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(
                    fp, max_header_size=_MAX_HEADER_SIZE)
            else:
                self.fail(f"{key} uses .npy format version {version[0]}.{version[1]}, "
                          f"expected 1.0 or 2.0")
            header_size = fp.tell()
        shape = tuple(int(s) for s in shape)
        if dtype.hasobject:
            self.fail(f"{key} is an object array (pickled data); model files never "
                      f"contain pickles and this one is refused unread")
        n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size - header_size != n_bytes:
            self.fail(f"{key} declares shape {shape} of {dtype} ({n_bytes} bytes) but holds "
                      f"{info.file_size - header_size} bytes of data")
        return dtype, shape


_KIND_NAMES = {"U": "a unicode string", "iu": "an integer type", "f": "a floating-point type"}


def _reason(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_reason(exc):
    return exc.strerror or _reason(exc)
