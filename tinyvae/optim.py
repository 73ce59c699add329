"""Optimizers written by hand: SGD with momentum and Adam, one fused pass over all parameters.

A model keeps every parameter in one flat vector ``model.flat`` and its gradient in
``model.grad_flat`` (same layout), so a step is a single kernel call over (P,) arrays.
The optimizer's own state (velocity, or the moments m and v and the step count t) is plain
arrays too, saved in checkpoints through :meth:`state_dict`.
"""
import numpy as np

from . import kernels
from .errors import TinyVAEError
from .model import check_nonneg_float


class SGD:
    """v <- momentum * v - lr * grad, then theta <- theta + v   (Goodfellow et al. alg. 8.2)."""

    name = "sgd"

    def __init__(self, lr=1e-2, momentum=0.9):
        self.lr = check_nonneg_float("lr", lr, positive=True)
        self.momentum = check_nonneg_float("momentum", momentum)
        if self.momentum >= 1:
            raise TinyVAEError(f"momentum must be below 1, got {momentum}")
        self.velocity, self.t = None, 0

    def step(self, model):
        """One update of ``model.flat`` from ``model.grad_flat``, in place."""
        if self.velocity is None:
            self.velocity = np.zeros_like(model.flat)
        self.t += 1
        kernels.sgd(model.flat, model.grad_flat, self.velocity, self.lr, self.momentum)

    def state_dict(self):
        """The step count and the velocity, as arrays (what a checkpoint saves): copies, which
        training goes on without changing."""
        v = np.zeros(0) if self.velocity is None else self.velocity.copy()   # a snapshot, not the live array
        return {"t": np.array(self.t), "velocity": v}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.velocity = np.array(state["velocity"]) if state["velocity"].size else None

    def finite(self):
        """False when the velocity has overflowed (the run has diverged)."""
        return self.velocity is None or bool(np.all(np.isfinite(self.velocity)))


class Adam:
    """Adam (Kingma & Ba 2015, alg. 1) with bias-corrected moments:

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
        theta <- theta - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    lr, beta1, beta2, eps as in the paper (defaults 1e-3, 0.9, 0.999, 1e-8); ``t`` counts the
    steps taken, and ``m`` and ``v`` are (P,) arrays like ``model.flat`` after the first."""

    name = "adam"

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = check_nonneg_float("lr", lr, positive=True)
        self.beta1, self.beta2 = check_nonneg_float("beta1", beta1), check_nonneg_float("beta2", beta2)
        self.eps = check_nonneg_float("eps", eps, positive=True)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise TinyVAEError(f"Adam's betas must lie in [0, 1), got {beta1}, {beta2}")
        self.m = self.v = None
        self.t = 0

    def step(self, model):
        """One update of ``model.flat`` from ``model.grad_flat``, in place."""
        if self.m is None:
            self.m, self.v = np.zeros_like(model.flat), np.zeros_like(model.flat)
        self.t += 1
        kernels.adam(model.flat, model.grad_flat, self.m, self.v, self.lr,
                     self.beta1, self.beta2, self.eps, self.t)

    def state_dict(self):
        """The step count and the moments, as arrays (what a checkpoint saves): copies, which
        training goes on without changing."""
        empty = np.zeros(0)
        return {"t": np.array(self.t), "m": empty if self.m is None else self.m.copy(),   # snapshots,
                "v": empty if self.v is None else self.v.copy()}                         # not live arrays

    def load_state_dict(self, state):
        self.t = int(state["t"])
        if state["m"].size:
            self.m, self.v = np.array(state["m"]), np.array(state["v"])
        else:
            self.m = self.v = None

    def finite(self):
        """False when a moment has overflowed: a v of inf stops its parameter for good (m / sqrt(v) = 0)."""
        return self.m is None or bool(np.all(np.isfinite(self.m)) and np.all(np.isfinite(self.v)))


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(name, lr):
    """An optimizer from its name and learning rate; an optimizer object (``SGD(...)``,
    ``Adam(...)``) is returned as it is, with its own lr."""
    if isinstance(name, tuple(OPTIMIZERS.values())):
        return name
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise TinyVAEError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}, or an "
                           "optimizer object such as tv.SGD(lr=0.03, momentum=0.5)") from None
    return cls(lr=lr)
