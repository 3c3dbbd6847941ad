"""The thread policy (fastbp._threads): small calls stay serial, the serial and
parallel paths agree bit for bit, the default thread count follows the
process's environment, and the ways users call fastbp never abort it.
Nothing here times anything: the speed under contention is measured by
``asv_bench/benchmarks/bench_contention.py`` and ``compare_peers.py --contention``."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastbp
from fastbp import _kernels as K
from fastbp import _threads
from fastbp._atomic import take_next
from fastbp._compiler import CHUNK, MAX_SLOTS

POOL = _threads.numba.config.NUMBA_NUM_THREADS
needs_two = pytest.mark.skipif(POOL < 2, reason="needs numba's pool to have 2 threads")


def run(code, *, env=None, timeout=600):
    full_env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "FASTBP_NUM_THREADS", "NUMBA_THREADING_LAYER",
                 "FASTBP_PARALLEL_MIN_FLOPS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def digest(*arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


@pytest.fixture
def threads(monkeypatch):
    """Every multi-slot call parallel (threshold 0); restores the thread count."""
    monkeypatch.setattr(_threads, "PARALLEL_MIN_FLOPS", 0.0)
    before = _threads._limit
    yield
    _threads._limit = before


def everything(net, X, Y, **train):
    """Digest of every kernel's output on (X, Y): gradient, cost, prediction,
    ρ̂ and a mini-batch epoch."""
    J, gW, gb = net.cost_and_gradient(X, Y, 1e-3)
    cost = net.cost(X, Y, 1e-3)
    out = net.predict(X)
    rho = net.mean_hidden_activation(X)
    trained = net.copy()
    hist = fastbp.train(trained, X, Y, learning_rate=0.05, iterations=2, **train)
    return digest(np.array([J, cost]), *gW, *gb, out, rho, trained.theta, hist)


@needs_two
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layers,m", [([5, 7, 3], 257), ([20, 30, 4], 1500),
                                      ([64, 25, 64], 16 * 256 + 3), ([8, 8, 8, 2], 40 * 256)])
def test_serial_and_parallel_paths_are_bit_identical(threads, monkeypatch, layers, m, dtype):
    entered = []

    class Spy(_threads.parallel_region):
        def __enter__(self):
            entered.append(self.n)
            return super().__enter__()

    monkeypatch.setattr(_threads, "parallel_region", Spy)
    rng = np.random.default_rng(m)
    X = rng.random((m, layers[0])).astype(dtype)
    Y = rng.random((m, layers[-1])).astype(dtype)
    net = fastbp.Network(layers, dtype=dtype, epsilon=0.3, seed=1)
    results, regions = {}, {}
    for n in (1, 2):
        fastbp.set_num_threads(n)
        entered.clear()
        results[n] = (everything(net, X, Y),
                      everything(net, X, Y, optimizer="sgd", batch_size=300))
        regions[n] = len(entered)
    assert results[1] == results[2]
    assert regions[1] == 0 and regions[2] >= 10  # one path each: serial, then parallel


@numba.njit(parallel=True)
def _take_all(n, workers, taken, owner, takes):
    for w in numba.prange(workers):
        s = take_next(taken)
        while s < n:
            owner[s] = w
            takes[w] += 1
            s = take_next(taken)


@needs_two
def test_take_next_gives_every_slot_to_exactly_one_thread():
    # The dynamic schedule's counter: raced by every thread of the pool, each
    # number below n goes to one taker, once (a lost update would hand a
    # slot to two threads, a skipped number would leave one undone).
    n, workers = 1_000_000, 4 * POOL
    numba.set_num_threads(POOL)
    shared = 0
    for _ in range(3):
        owner = np.full(n, -1, np.int64)
        takes = np.zeros(workers, np.int64)
        taken = np.zeros(1, np.int64)
        _take_all(n, workers, taken, owner, takes)
        assert (owner >= 0).all() and takes.sum() == n
        assert taken[0] == n + workers  # each taker's last take found nothing left
        shared += np.count_nonzero(takes) >= 2
    if not shared:  # one taker got every number: nothing raced, nothing was shown
        pytest.skip("the pool's threads never ran at once (a loaded machine)")


@needs_two
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_slots_give_the_same_bits_whichever_thread_takes_them(dtype):
    # Two takers for the 16 slots, three, one per slot, and the serial loop
    # (0): the same slot buffers, summed in slot order, so the same bits.
    layers, m = [64, 25, 64], 16 * 256 + 3
    rng = np.random.default_rng(7)
    X = rng.random((m, layers[0])).astype(dtype)
    net = fastbp.Network(layers, dtype=dtype, epsilon=0.3, seed=3)
    dt = net.dtype.type
    numba.set_num_threads(POOL)
    out = {}
    for takers in (0, 2, 3, 16):
        grad = np.empty_like(net.theta)
        J = K.cost_and_gradient_kernel(
            net.theta, net._sizes, net._activation_codes, net._products, net._loss_code, X, X,
            dt(1e-3), np.empty(0, dtype), True, False, m, CHUNK, MAX_SLOTS, takers,
            net._new_workspace(MAX_SLOTS), grad)
        out[takers] = digest(np.array([J]), grad)
    assert len(set(out.values())) == 1, out


@needs_two
def test_small_calls_never_wake_the_thread_pool():
    # 2-8-1 nets, UFLDL-sized calls and 32-example mini-batches are far below
    # PARALLEL_MIN_FLOPS: they must never enter a parallel region. GNU OpenMP
    # creates its worker threads at the first parallel region, so the
    # process's thread count tells (BLAS's own threads are started first).
    out = run("""
        import os
        import numpy as np, fastbp
        from fastbp import _threads
        _threads._blas()
        np.ones((300, 300)) @ np.ones((300, 300))
        threads = lambda: len(os.listdir("/proc/self/task"))
        before = threads()
        rng = np.random.default_rng(0)
        for layers, m in (([2, 8, 1], 256), ([2, 8, 1], 2000), ([64, 25, 64], 600)):
            X = rng.random((m, layers[0])); Y = rng.random((m, layers[-1]))
            net = fastbp.Network(layers)
            net.cost_and_gradient(X, Y, 1e-4); net.predict(X); net.mean_hidden_activation(X)
            fastbp.train(net, X, Y, iterations=2)
            fastbp.train(net, X, Y, iterations=1, optimizer="sgd", batch_size=32)
            fastbp.train(net, X, Y, iterations=2, optimizer="lbfgs")
        small = threads()
        X = rng.random((20000, 64))
        fastbp.Network([64, 100, 64]).cost_and_gradient(X, X)   # big: parallel
        print(_threads.threading_layer(), small - before, threads() - before)
    """, env={"NUMBA_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    layer, small, big = out.stdout.split()
    if layer != "omp":
        pytest.skip(f"numba runs on {layer}: its workers start with the layer")
    assert int(small) == 0       # no worker thread was ever needed
    assert int(big) >= 1         # the observable works: a big call starts one


def test_the_choice_depends_on_the_work_only():
    big, small = _threads.PARALLEL_MIN_FLOPS, _threads.PARALLEL_MIN_FLOPS / 2
    before = _threads._limit
    try:
        for n in range(1, POOL + 1):
            fastbp.set_num_threads(n)
            assert _threads.worth_sharing(big) and not _threads.worth_sharing(small)
            assert _threads.plan(small) == 0
            assert _threads.plan(big) == (n if n >= 2 else 0)
    finally:
        _threads._limit = before


# ---------------------------------------------------------------- environment
DEFAULT = "import fastbp; print(fastbp.get_num_threads())"


@needs_two
@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"OMP_NUM_THREADS": "1"}, 1),
    ({"NUMBA_NUM_THREADS": "1"}, 1),
    ({"FASTBP_NUM_THREADS": "1"}, 1),
    ({"FASTBP_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}, 1),
])
def test_default_thread_count_follows_the_environment(env, expected):
    out = run(DEFAULT, env=env)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == (expected or min(POOL, _threads.available_cpus()))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and 2 CPUs")
def test_default_thread_count_honours_cpu_affinity():
    cpu = min(os.sched_getaffinity(0))
    out = run(f"import os; os.sched_setaffinity(0, {{{cpu}}})\n" + DEFAULT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 1


@pytest.mark.parametrize("files,expected", [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({}, None),
])
def test_cgroup_quota_is_read(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _threads._cgroup_cpus(str(tmp_path)) == expected


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux affinity")
def test_cgroup_quota_caps_the_default(monkeypatch):
    monkeypatch.setattr(_threads, "_cgroup_cpus", lambda: 1)
    assert _threads.available_cpus() == 1


def test_set_num_threads_checks_its_argument():
    with pytest.raises(TypeError, match="n must be an integer"):
        fastbp.set_num_threads(1.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        fastbp.set_num_threads(True)
    with pytest.raises(ValueError, match="between 1 and"):
        fastbp.set_num_threads(0)
    with pytest.raises(ValueError, match="between 1 and"):
        fastbp.set_num_threads(POOL + 1)


def test_set_num_threads_holds_for_every_python_thread():
    import threading
    before = _threads._limit
    try:
        fastbp.set_num_threads(1)
        seen = []
        t = threading.Thread(target=lambda: seen.append(fastbp.get_num_threads()))
        t.start(); t.join()
        assert seen == [1]
    finally:
        _threads._limit = before


@needs_two
def test_threadpoolctl_limits_hold_fastbp():
    from threadpoolctl import threadpool_info, threadpool_limits
    before = fastbp.get_num_threads()
    assert any(info["user_api"] == "fastbp" for info in threadpool_info())
    with threadpool_limits(1):
        assert fastbp.get_num_threads() == 1
        assert _threads.plan(1e12) == 0
    assert fastbp.get_num_threads() == before
    with threadpool_limits(1, user_api="blas"):
        assert fastbp.get_num_threads() == before
    with threadpool_limits(limits={"fastbp": 1}):
        assert fastbp.get_num_threads() == 1
    assert fastbp.get_num_threads() == before


def _worker_threads():
    import fastbp
    return fastbp.get_num_threads()


def test_joblib_workers_do_not_oversubscribe():
    # loky gives each of n_jobs workers cpu_count // n_jobs threads (at least 1),
    # through NUMBA_NUM_THREADS / OMP_NUM_THREADS in the worker's environment.
    joblib = pytest.importorskip("joblib")
    n_jobs = 2
    got = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_worker_threads)() for _ in range(2))
    expected = max(1, joblib.cpu_count() // n_jobs)
    assert got == [expected, expected]


# ----------------------------------------------------------- threading layers
CONCURRENT = """
    import threading, hashlib, sys
    import numpy as np, fastbp
    from fastbp import _threads
    fastbp.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = rng.random((3000, 20)); Y = rng.random((3000, 3))
    nets = [fastbp.Network([20, 16, 3], seed=k) for k in range(4)]
    expected = [net.cost_and_gradient(X, Y, 1e-3)[0] for net in nets]
    errors = []
    def work(k):
        for _ in range(15):
            J = nets[k].cost_and_gradient(X, Y, 1e-3)[0]
            if J != expected[k]:
                errors.append((k, J))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(_threads.threading_layer(), len(errors))
"""


@needs_two
@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_python_threads_calling_at_once_never_abort(layer):
    # numba's workqueue layer aborts the process on concurrent parallel calls
    # ("Concurrent access has been detected"): fastbp serialises them there.
    out = run(CONCURRENT, env={"NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2",
                               "FASTBP_PARALLEL_MIN_FLOPS": "0"})
    if layer == "omp" and "No threading layer could be loaded" in out.stderr:
        pytest.skip("no OpenMP runtime on this machine")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [layer, "0"]


FORK = """
    import os, sys
    import numpy as np, fastbp
    X = np.random.default_rng(0).random((3000, 20))
    net = fastbp.Network([20, 16, 20])
    J = net.cost(X, X)                    # starts GNU OpenMP's threads in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, repr(net.cost(X, X)).encode())
        os._exit(0)
    os.close(w)
    got = os.read(r, 100).decode()
    _, status = os.waitpid(pid, 0)
    print(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, float(got) == J)
"""


@needs_two
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_serially_instead_of_dying():
    # numba terminates a forked child that enters GNU OpenMP; fastbp's child
    # runs its kernels serially (same result).
    out = run(FORK, env={"NUMBA_NUM_THREADS": "2", "FASTBP_PARALLEL_MIN_FLOPS": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


PASSIVE = """
    import os
    import numpy as np, fastbp
    X = np.random.default_rng(0).random((3000, 20))
    fastbp.Network([20, 16, 20]).cost(X, X)
    print(fastbp._threads.threading_layer(), os.environ.get("OMP_WAIT_POLICY"))
"""


@needs_two
@pytest.mark.parametrize("user,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(user, expected):
    env = {"NUMBA_NUM_THREADS": "2", "FASTBP_PARALLEL_MIN_FLOPS": "0", "OMP_DISPLAY_ENV": "TRUE"}
    if user:
        env["OMP_WAIT_POLICY"] = user
    out = run(PASSIVE, env=env)
    assert out.returncode == 0, out.stderr
    layer, left = out.stdout.split()
    if layer != "omp":
        pytest.skip(f"numba runs on {layer}, not OpenMP")
    assert f"OMP_WAIT_POLICY = '{expected}'" in out.stderr
    assert left == (user or "None")  # the process's environment is as it was
