"""scikit-learn's own MLP test module, run against fastbp's estimators.

The module ``sklearn/neural_network/tests/test_mlp.py`` of the *installed*
scikit-learn is imported (nothing of it is copied here) and every test function
in it is collected from this file with the module's two names
``MLPClassifier`` and ``MLPRegressor`` bound to fastbp's classes — the only
change a user switching would make. Parametrized tests whose parameters are
those classes get fastbp's classes instead.

Each of scikit-learn's tests is one test here, reported under its own name.
The few that cannot pass are listed in ``KNOWN_FAILURES`` with the reason and
run as strict xfail: they must still fail (so a fix shows up), and every other
test must pass. ``python -m pytest tests/test_sklearn_mlp_suite.py -rxX`` lists
them.
"""

import functools
import importlib

import pytest

sklearn = pytest.importorskip("sklearn")
suite = importlib.import_module("sklearn.neural_network.tests.test_mlp")

import sklearn.neural_network as sk_nn  # noqa: E402

import fastbp  # noqa: E402

REBIND = {sk_nn.MLPClassifier: fastbp.MLPClassifier, sk_nn.MLPRegressor: fastbp.MLPRegressor}

#: scikit-learn's tests that fail against fastbp, by test id, with the reason.
KNOWN_FAILURES = {
    # none at present: add "test_id": "reason" here for a test that must keep failing
}


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture, at its default (SKLEARN_TESTS_GLOBAL_RANDOM_SEED
    unset: 42)."""
    return 42


@pytest.fixture(autouse=True)
def _fastbp_estimators(monkeypatch, request):
    monkeypatch.setattr(suite, "MLPClassifier", fastbp.MLPClassifier)
    monkeypatch.setattr(suite, "MLPRegressor", fastbp.MLPRegressor)
    reason = KNOWN_FAILURES.get(request.node.name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


def _rebound_mark(mark):
    """A parametrize mark whose sklearn estimator classes are fastbp's."""
    if mark.name != "parametrize":
        return mark
    argnames, argvalues = mark.args[0], mark.args[1]

    def swap(value):
        if isinstance(value, tuple):
            return tuple(swap(v) for v in value)
        return REBIND.get(value, value) if isinstance(value, type) else value

    return pytest.mark.parametrize(argnames, [swap(v) for v in argvalues], **mark.kwargs).mark


def _collect():
    tests = {}
    for name, func in vars(suite).items():
        if not (name.startswith("test_") and callable(func)):
            continue

        @functools.wraps(func)
        def test(*args, __func=func, **kwargs):
            return __func(*args, **kwargs)

        test.pytestmark = [_rebound_mark(m) for m in getattr(func, "pytestmark", [])]
        tests[name] = test
    return tests


globals().update(_collect())
