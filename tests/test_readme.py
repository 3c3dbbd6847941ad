"""Every ```python block of README.md runs on its own, in a fresh interpreter,
as a user who copies just that block would run it (issue 12, item 1)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks():
    text = open(README, encoding="utf-8").read()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        heading = [h for h in re.findall(r"^#+ (.+)$", text[:match.start()], re.M)][-1]
        blocks.append(pytest.param(match.group(1), id=f"line{line}-{heading[:30]}"))
    return blocks


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 4


def test_every_link_inside_the_readme_points_inside_the_repository():
    text = open(README, encoding="utf-8").read()
    for target in re.findall(r"\]\(([^)#]+)[^)]*\)", text):
        if "://" in target:
            continue
        path = os.path.normpath(os.path.join(ROOT, target))
        assert path.startswith(ROOT + os.sep) and os.path.exists(path), target


@pytest.mark.parametrize("code", python_blocks())
def test_readme_python_block_runs_alone(code, tmp_path):
    if "mpi4py" in code:
        pytest.importorskip("mpi4py")
    env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, f"this README block fails on its own:\n{code}\n{r.stderr}"
