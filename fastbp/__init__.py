"""fastbp: the UFLDL backpropagation algorithm as parallel Numba kernels.

>>> import numpy as np, fastbp
>>> net = fastbp.Network([2, 3, 1], seed=0)
>>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); Y = np.array([[0.], [1.], [1.], [0.]])
>>> history = fastbp.train(net, X, Y, learning_rate=0.5, iterations=3)
>>> history.shape
(3,)
"""

from ._threads import get_num_threads, set_num_threads
from . import io
from .gradcheck import check_gradient
from .io import ModelFileError, load, save
from .network import Network
from .training import DivergenceError, TrainingHistory, TrainingInterrupted, train
from .many import train_many

__version__ = "0.1.0"


def __getattr__(name):
    # The estimators import scikit-learn when it is there: load them on first use,
    # so that `import fastbp` never does.
    if name in ("MLPRegressor", "MLPClassifier"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")

__all__ = ["Network", "train", "train_many", "check_gradient", "set_num_threads", "get_num_threads",
           "DivergenceError", "TrainingHistory", "TrainingInterrupted", "save", "load",
           "ModelFileError", "MLPRegressor", "MLPClassifier", "__version__"]
