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

:func:`load` reads only regular files (a FIFO, device or socket is refused
without being opened for reading, so it can not block or stream forever),
refuses an archive whose directory declares more than 64 entries before
parsing it, opens it with ``np.load(file, allow_pickle=False)`` and checks
every entry's compression method (stored or deflate, what numpy writes) and
npy header (dtype and shape) *before* reading its data, so an object array is
refused without being unpickled and neither a lying header nor a lying zip
directory can make it allocate or inflate more than the file can hold. The
parameters read become the network's θ as they are (no second copy). Every
problem with a file raises :class:`ModelFileError` (a ``ValueError``) with
one short line naming the file. Checkpoints and the CLI's data files are
read through the same checks (:class:`SafeArchive`).
"""

import collections
import os
import re
import socket
import stat
import tempfile
import zipfile

import numpy as np
import numpy.lib.format as npy_format

from ._validation import all_finite
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
_MAX_MEMBERS = 64                             # a model file has 7; refuse huge directories unread
# numpy writes members stored (savez) or deflated (savez_compressed). Other
# methods are refused unread: zipfile decompresses bzip2 and lzma input without
# an output bound, so a few KB could inflate to gigabytes before any check.
_COMPRESSION_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma", 9: "deflate64"}


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
    and the temporary file is removed.

    The temporary file is named ``.<name>.<host>-<pid>.<random>.tmp``. A writer
    killed outright (``kill -9``, power loss) can not remove its own, so
    before writing, the temporary files of *this* ``path`` left by writers on
    this host that are no longer running are removed (:func:`reclaim_temporaries`).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    reclaim_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=directory)
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


def _host_tag():
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _temporary_prefix(path):
    return f".{os.path.basename(path)}.{_host_tag()}-{os.getpid()}."


def reclaim_temporaries(path):
    """Remove the temporary files that :func:`atomic_write` calls to ``path``
    left behind when their process was killed; returns the names removed.

    A file is removed only if all of these hold: its name is exactly
    ``.<basename of path>.<this host>-<pid>.<8 mkstemp characters>.tmp``, it
    is a regular file (not a link) owned by this user, and no process ``pid``
    is running on this host. A writer that is still alive, one on another
    host sharing the directory, and every other file are left alone.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.{_host_tag()}-")
                         + r"(\d+)\.[a-z0-9_]{8}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            continue
        if pid == os.getpid() or _process_running(pid):
            continue
        try:
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def _process_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd number): leave its file alone
    return True


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


# ------------------------------------------------------- reading safely
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """The path is a directory, FIFO, device or socket: reading it could
    block forever or never end, so it is refused unread."""


def _kind(mode):
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular_file(name):
    """``name`` opened for binary reading, only if it is a regular file.

    The type is checked with ``os.stat`` before opening, and again on the
    open descriptor (the path may change in between); the open itself uses
    ``O_NONBLOCK``, so even a FIFO swapped in at that moment can not block.
    Raises :class:`NotARegularFile` (an ``OSError``) naming what the path is,
    or the ``OSError`` of ``stat``/``open`` (missing, permission denied, …).
    """
    mode = os.stat(name).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(f"is {_kind(mode)}, not a regular file")
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def preview(names, limit=5):
    """At most ``limit`` names, then how many more: keeps messages one short line."""
    names = list(names)
    shown = ", ".join(repr(n if len(n) <= 40 else n[:37] + "...") for n in names[:limit])
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return f"[{shown}{more}]"


def check_entry_count(f, limit, fail):
    """Refuse an archive whose directory declares more than ``limit``
    entries, from its end-of-central-directory record alone — before zipfile
    parses (and numpy lists) every entry, which takes seconds for 100,000."""
    size = os.fstat(f.fileno()).st_size
    tail_len = min(size, 22 + 65535)  # the record, then a comment of up to 64 KB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    f.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return  # not a zip archive: np.load will say so
    count = int.from_bytes(tail[at + 10:at + 12], "little")
    directory_size = int.from_bytes(tail[at + 12:at + 16], "little")
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        offset = int.from_bytes(tail[locator + 8:locator + 16], "little")  # zip64 record
        if 0 <= offset <= size - 56:
            f.seek(offset)
            record = f.read(56)
            f.seek(0)
            if record[:4] == b"PK\x06\x06":
                count = int.from_bytes(record[32:40], "little")
                directory_size = int.from_bytes(record[40:48], "little")
    if count > limit:
        fail(f"has {count} entries; expected at most {limit}")
    # zipfile walks the directory by its size, not its count: bound that too
    # (an entry numpy writes takes under 100 bytes there; allow 1 KB each).
    if directory_size > 1024 * limit:
        fail(f"has a zip directory of {directory_size} bytes, too large for at most "
             f"{limit} entries")


class SafeArchive:
    """The members of an opened ``.npz`` (``np.load`` result) read one at a
    time, each header checked before its data: allowed compression method,
    sizes consistent with the archive and with the header's dtype and shape,
    no object arrays. ``fail(problem)`` raises the caller's error."""

    def __init__(self, npz, file_size, fail, max_members=_MAX_MEMBERS):
        self.npz = npz
        self.file_size = file_size
        self.fail = fail
        infos = npz.zip.infolist()
        if len(infos) > max_members:
            fail(f"has {len(infos)} entries; expected at most {max_members}")
        keys = [info.filename.removesuffix(".npy") for info in infos]
        counts = collections.Counter(keys)
        duplicates = sorted(k for k, n in counts.items() if n > 1)
        if duplicates:
            fail(f"has duplicate entries {preview(duplicates)}")
        for info, key in zip(infos, keys):
            if info.compress_type not in _COMPRESSION_METHODS:
                method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
                fail(f"{key} is compressed with {method}; numpy writes members stored or "
                     f"deflate-compressed, and nothing else is read")
        self.members = {key: info for key, info in zip(keys, infos)}

    def array(self, key, *, kinds, ndim, expect_shape=None, shape_hint=""):
        """The entry ``key``, after its header has shown the expected kind and shape
        and a data size consistent with the archive. ``ndim`` is an int or a
        tuple of allowed ranks."""
        info = self.members[key]
        dtype, shape = self.header(key, info)
        if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None \
                or dtype.subdtype is not None:
            self.fail(f"{key} has dtype {dtype}, expected {_KIND_NAMES.get(kinds, kinds)}")
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if len(shape) not in ranks:
            what = "a scalar (shape ())" if ranks == (0,) else \
                " or ".join(f"a {n}-D array" for n in ranks)
            self.fail(f"{key} has shape {shape}, expected {what}")
        if expect_shape is not None and shape != expect_shape:
            self.fail(f"{key} has shape {shape}, expected {expect_shape} ({shape_hint})")
        value = self.npz[key]
        if not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape != shape:
            self.fail(f"{key} could not be read as declared")
        return value

    def header(self, key, info):
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
        with self.npz.zip.open(info) as fp:
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
    try:
        f = open_regular_file(name)
    except FileNotFoundError:
        raise ModelFileError(name, "no such file") from None
    except NotARegularFile as exc:
        raise ModelFileError(name, f"{exc}; a model file is a .npz archive") from None
    except IsADirectoryError:
        raise ModelFileError(name, "is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(name, f"can not be read: {_os_reason(exc)}") from None
    with f:
        _check_head(name, f)
        try:
            check_entry_count(f, _MAX_MEMBERS, lambda problem: _fail(name, problem))
            npz = np.load(f, allow_pickle=False)
        except ModelFileError:
            raise
        except OSError as exc:
            raise ModelFileError(name, f"can not be read: {_os_reason(exc)}") from None
        except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, …
            raise ModelFileError(name, f"is not a valid .npz archive (truncated or corrupt?): "
                                       f"{_reason(exc)}") from None
        try:
            with npz:
                return _Reader(name, npz, os.fstat(f.fileno()).st_size).network()
        except ModelFileError:
            raise
        except Exception as exc:  # corrupt zip members, CRC errors, MemoryError, …
            raise ModelFileError(name, f"is corrupt (truncated or damaged?): "
                                       f"{_reason(exc)}") from None


def _fail(name, problem):
    raise ModelFileError(name, problem)


def _check_head(name, f):
    """The open file starts like a zip archive (then rewinds it)."""
    try:
        head = f.read(8)
        f.seek(0)
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

    def __init__(self, name, npz, file_size):
        self.name = name
        self.archive = SafeArchive(npz, file_size, self.fail)
        self.members = self.archive.members

    def fail(self, problem):
        raise ModelFileError(self.name, problem)

    def network(self):
        keys = set(self.members)
        if "format" not in keys:
            self.fail(f"is not a fastbp model file: it has no 'format' entry "
                      f"(entries: {preview(sorted(keys)) if keys else 'none'})")
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
            self.fail(f"has unexpected entries {preview(extra)} (a version-{FORMAT_VERSION} model file "
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
        if not theta.dtype.isnative:  # swapped in place: no second copy of θ
            theta = theta.byteswap(inplace=True).view(theta.dtype.newbyteorder("="))
        if not all_finite(theta):  # no temporary of θ's size
            self.fail("theta contains NaN or Inf; every parameter must be finite")

        # The Network takes the array just read as its θ: no random draw, no copy.
        return Network._from_theta(theta, sizes, activations=activations, loss=loss,
                                   dtype=dtype)

    # ---------------------------------------------------------------- entries
    def string(self, key):
        return str(self.array(key, kinds="U", ndim=0)[()])

    def integer_scalar(self, key):
        return int(self.array(key, kinds="iu", ndim=0)[()])

    def array(self, key, **kw):
        return self.archive.array(key, **kw)


_KIND_NAMES = {"U": "a unicode string", "iu": "an integer type", "f": "a floating-point type",
               "biuf": "numbers (bool, integer or floating point)"}


def _reason(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_reason(exc):
    return exc.strerror or _reason(exc)
