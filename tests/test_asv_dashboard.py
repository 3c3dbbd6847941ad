"""The published asv dashboard shows graphs in a real browser (issue 12, item 2).

Runs one cheap benchmark of the real suite with ``asv run --python=same`` into
a scratch results directory (fresh HOME, ``asv machine --yes``), publishes it,
makes it work offline (``asv_bench/offline_dashboard.py``), opens the graph
page in headless Chromium and looks for plotted data points in the screenshot.
The same check on the page without its graph data must find none.

Needs asv (``pip install -e ".[bench]"``), git, Chromium (Debian:
``apt-get install chromium``) and Debian's JavaScript libraries that
offline_dashboard.py lists. Skips with the reason when one is absent, except
in CI (``CI`` set), where a missing piece fails.
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASV = os.path.join(ROOT, "asv_bench")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BENCH = "bench_overhead.Overhead.time_predict_one_example"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def need(condition, reason):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"in CI: {reason}")
        pytest.skip(reason)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    need(CHROMIUM, "Chromium is not installed (apt-get install chromium)")
    if not shutil.which("asv"):  # the README's test command installs [test] only
        pytest.skip("asv is not installed (pip install -e '.[bench]'); .ci/run runs this "
                    "test again after installing it")
    need(os.path.isdir(os.path.join(ROOT, ".git")) or os.path.isfile(os.path.join(ROOT, ".git")),
         "not a git checkout: asv needs the repository's commits")
    sys.path.insert(0, ASV)
    try:
        import offline_dashboard
    finally:
        sys.path.remove(ASV)
    need(not offline_dashboard.missing(),
         f"Debian's JavaScript libraries are missing: {offline_dashboard.missing()}")

    work = tmp_path_factory.mktemp("asv")
    conf = json.load(open(os.path.join(ASV, "asv.conf.json")))
    conf.update(repo=ROOT, benchmark_dir=os.path.join(ASV, "benchmarks"),
                results_dir=str(work / "results"), html_dir=str(work / "html"),
                env_dir=str(work / "env"))
    (work / "asv.conf.json").write_text(json.dumps(conf))
    env = dict(os.environ, HOME=str(work / "home"))
    os.makedirs(env["HOME"])
    head = run(["git", "rev-parse", "HEAD"], cwd=ROOT).stdout.strip()
    run(["asv", "machine", "--yes"], cwd=work, env=env)
    run(["asv", "run", "--python=same", "--set-commit-hash", head, "--bench",
         r"Overhead\.time_predict_one_example$"], cwd=work, env=env)
    run(["asv", "publish"], cwd=work, env=env)
    offline_dashboard.make_offline(str(work / "html"))
    return work / "html"


def serve(directory):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def chromium(url, tmp_path, *args):
    profile = tempfile.mkdtemp(dir=tmp_path)
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--virtual-time-budget=20000", "--window-size=1280,900", *args, url],
                          capture_output=True, text=True, timeout=300, check=True)


def page_shows_plot(html_dir, tmp_path):
    """(shows a plot?, why) for the benchmark's graph page, after its JavaScript
    ran: the page must not report missing data, and the plot area must hold
    strongly coloured pixels (flot draws data points and lines in colour;
    axes, grid and text are grey or black)."""
    server = serve(html_dir)
    try:
        url = f"http://127.0.0.1:{server.server_port}/index.html#{BENCH}"
        dom = chromium(url, tmp_path, "--dump-dom").stdout
        shot = tmp_path / "graph.png"
        chromium(url, tmp_path, f"--screenshot={shot}")
    finally:
        server.shutdown()
    body = dom.split("<body", 1)[-1]
    if "external (JavaScript) dependencies" in body and "Benchmark grid" not in body:
        return False, "the page's JavaScript libraries did not load"
    if "No data for this combination" in dom:
        return False, "the page says: No data for this combination of filters"
    import matplotlib.image

    rgb = matplotlib.image.imread(shot)[..., :3]
    plot = rgb[70:800, 200:]                       # right of the side bar, below the nav bar
    coloured = int(np.count_nonzero(plot.max(axis=2) - plot.min(axis=2) > 0.35))
    if coloured <= 20:
        return False, f"only {coloured} coloured pixels in the plot area"
    return True, f"{coloured} coloured pixels in the plot area"


def test_the_published_graph_page_shows_plotted_data(dashboard, tmp_path):
    assert (dashboard / "graphs").is_dir()
    shown, why = page_shows_plot(dashboard, tmp_path)
    assert shown, why


def test_the_check_fails_on_a_page_without_graph_data(dashboard, tmp_path):
    empty = tmp_path / "html"
    shutil.copytree(dashboard, empty)
    shutil.rmtree(empty / "graphs")
    shown, why = page_shows_plot(empty, tmp_path)
    assert not shown and "No data" in why, why


def test_the_check_fails_on_the_page_asv_publishes_offline(dashboard, tmp_path):
    # asv's own index.html loads its libraries from CDNs, unreachable offline.
    online = tmp_path / "html"
    shutil.copytree(dashboard, online)
    (online / "index.html").write_text(
        (dashboard / "index.html").read_text().replace('src="vendor/', 'src="https://0.0.0.0/'))
    shown, why = page_shows_plot(online, tmp_path)
    assert not shown and "libraries did not load" in why, why
