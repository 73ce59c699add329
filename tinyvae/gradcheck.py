"""The gradient checker: hand-written gradients against central finite differences.

For a scalar loss L(theta) and every entry theta_i of every named parameter array,

    n_i = (L(theta + h e_i) - L(theta - h e_i)) / (2 h)                 (central difference)

which is accurate to O(h^2). The analytic gradient a (from ``loss_and_grads``) is compared
with n per array by the relative error

    err = max_i |a_i - n_i| / max(1e-8, max_i |a_i| + max_i |n_i|).

In float64 with h around 1e-5 a correct backward gives errors of 1e-13 to 1e-8; anything
above 1e-7 is a bug (or a kink of relu hit by the perturbation). The floor grows with the
size of the loss: the difference quotient carries a rounding error of about 1e-16 |L| / h,
so a loss of 3e4 nats (a Bernoulli decoder driven to logits of 1e4) reaches about 1e-6 even
when the gradient is exact; check such extremes at kernel level. In float32 the rounding
error of L swamps the difference quotient, so checks refuse float32 parameters. Stochastic
nodes must hold their noise fixed: pass the same eps to every call.
"""
from dataclasses import dataclass

import numpy as np

from .errors import TinyVAEError

DEFAULT_H = 1e-5
DEFAULT_TOL = 1e-7


def relative_error(analytic, numeric):
    """max|a - n| / max(1e-8, max|a| + max|n|) over one array."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(n))))


def numerical_gradient(loss, array, h=DEFAULT_H):
    """dL/d(array) by central differences, perturbing ``array`` in place (and restoring it).

    ``loss()`` takes no arguments and returns the scalar loss for the current array values."""
    grad = np.zeros(array.shape, dtype=np.float64)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        try:
            array[idx] = old + h
            plus = loss()
            array[idx] = old - h
            minus = loss()
        finally:                       # a Ctrl-C (or an error) in loss() leaves no weight moved
            array[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


@dataclass
class GradRow:
    """One parameter array's check: its relative error and the entry where a and n differ most."""
    name: str
    shape: tuple
    error: float
    worst_index: tuple
    analytic: float
    numeric: float


class _Verdict:
    """``report.passed``: called with a tolerance, or read as a truth value at the default one."""

    def __init__(self, max_error):
        self.max_error = max_error

    def __call__(self, tol=DEFAULT_TOL):
        return bool(self.max_error <= tol)

    def __bool__(self):
        return self()

    def __eq__(self, other):                  # report.passed == True, as students write it
        return self() == other if isinstance(other, (bool, np.bool_)) else NotImplemented

    def __hash__(self):
        return hash(self())

    def __repr__(self):
        return f"{self()} (max relative error {self.max_error:.2e}; tolerance {DEFAULT_TOL:g})"


class GradReport:
    """The per-array results of a gradient check; ``str(report)`` is a table."""

    def __init__(self, rows, h=DEFAULT_H, title="", hint=""):
        self.rows, self.h, self.title = list(rows), h, title
        self.hint = hint                    # a note printed under the table (see check_model)

    @property
    def max_error(self):
        return max((r.error for r in self.rows), default=0.0)

    @property
    def worst(self):
        """The row with the largest relative error."""
        return max(self.rows, key=lambda r: r.error)

    @property
    def passed(self):
        """Whether every relative error is at most ``tol``: ``report.passed(1e-5)``, or
        ``report.passed()`` and plain ``report.passed`` for the default 1e-7. (A plain method
        would make ``assert report.passed``, without the parentheses, pass every report.)"""
        return _Verdict(self.max_error)

    def __getitem__(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self):
        head = f"{'parameter':<16} {'shape':<12} {'rel. error':>10}  worst entry: analytic vs numeric"
        lines = ([self.title] if self.title else []) + [head, "-" * len(head)]
        for r in self.rows:
            idx = ",".join(map(str, r.worst_index))
            lines.append(f"{r.name:<16} {str(r.shape):<12} {r.error:>10.2e}  "
                         f"[{idx}] {r.analytic:+.10e} vs {r.numeric:+.10e}")
        lines.append(f"max relative error {self.max_error:.2e} (h = {self.h:g}; expect 1e-13 .. 1e-8)")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)

    __repr__ = __str__


def _row(name, analytic, numeric):
    a = np.asarray(analytic, dtype=np.float64)
    diff = np.abs(a - numeric)
    worst = np.unravel_index(int(np.argmax(diff)), a.shape) if a.size else ()
    return GradRow(name, tuple(a.shape), relative_error(a, numeric), tuple(int(i) for i in worst),
                   float(a[worst]) if a.size else 0.0, float(numeric[worst]) if a.size else 0.0)


def check_gradients(loss, params, grads, h=DEFAULT_H, names=None, title=""):
    """Compare analytic ``grads`` with central differences of ``loss()`` for each named array.

    Inputs: ``loss`` a no-argument callable returning a float; ``params`` a dict of the live
    float64 arrays that ``loss`` reads (perturbed in place); ``grads`` the analytic gradients,
    same keys and shapes. Returns a :class:`GradReport`."""
    try:
        h = float(h)
    except (TypeError, ValueError):
        h = None
    if h is None or not (np.isfinite(h) and h > 0):
        raise TinyVAEError(f"the step h must be a positive number such as {DEFAULT_H:g}")
    names = list(params) if names is None else [names] if isinstance(names, str) else list(names)
    if not names:
        raise TinyVAEError("nothing to check: no parameter is named (an empty names list, no analytic "
                           "gradients, or no parameters)")
    unknown = [n for n in names if n not in params or n not in grads]
    if unknown:
        raise TinyVAEError(f"no parameter (with a gradient) named {', '.join(map(repr, unknown))}; the names "
                           f"are {', '.join(params)}")
    rows = []
    for name in names:
        p = params[name]
        if p.dtype != np.float64:
            raise TinyVAEError(f"gradient checks need float64 parameters; {name!r} is {p.dtype} "
                               "(build the model with dtype='float64')")
        g = np.asarray(grads[name])
        if g.shape != p.shape:
            raise TinyVAEError(f"gradient {name!r} has shape {g.shape}, parameter has {p.shape}")
        rows.append(_row(name, g, numerical_gradient(loss, p, h)))
    return GradReport(rows, h=h, title=title)


KINK_HINT = ("hint: this model has {kinds} units, whose derivative jumps at 0. If a pre-activation lies "
             "within h of 0 -- common with zero biases (the default initialisation) -- the finite difference "
             "itself is wrong there, and the check can fail with a correct backward pass. With random "
             "nonzero biases (as 'tinyvae gradcheck' sets them) or activation='tanh' that is rare, so a "
             "failure that remains points at the backward pass.")


def _kinked_activations(model):
    """The relu-like activations (a kink at 0) that ``model`` or its encoder/decoder MLPs use."""
    parts = [model, getattr(model, "encoder", None), getattr(model, "decoder", None)]
    kinds = {getattr(p, a, None) for p in parts for a in ("activation", "final_activation")}
    from .kernels import KINKED                 # here: importing the checker alone needs no numba
    return sorted(kinds & set(KINKED))


def check_model(model, *args, h=DEFAULT_H, names=None, title="", **kwargs):
    """Gradient-check any object with ``params`` and ``loss_and_grads(*args, **kwargs)``.

    The analytic gradients are copied before the finite differences run (a model may reuse its
    gradient buffers from call to call). Hold any noise fixed by passing it in ``args``.

    ReLU's kink: a relu or leaky_relu pre-activation within h of 0 (zero biases make that
    likely) breaks the central difference, and the error can reach 1 with a correct backward.
    When such a model fails the check, the report's ``hint`` says so (and ``str(report)``
    shows it); random nonzero biases or tanh units give a check that means something."""
    if not hasattr(model, "loss_and_grads") or not hasattr(model, "params"):
        raise TinyVAEError(f"check_model takes the model first, check_model(model, x, eps); got "
                           f"{type(model).__name__}, which has no params and loss_and_grads")
    _, grads = model.loss_and_grads(*args, **kwargs)
    grads = {k: np.array(v, dtype=np.float64, copy=True) for k, v in grads.items()}

    def loss():
        return float(model.loss_and_grads(*args, **kwargs)[0])

    report = check_gradients(loss, model.params, grads, h=h, names=names, title=title)
    kinds = _kinked_activations(model)
    if kinds and not report.passed():
        report.hint = KINK_HINT.format(kinds=" and ".join(kinds))
    return report


def check_function(f, inputs, analytic, h=DEFAULT_H, title=""):
    """Check the gradients of a scalar function ``f(**inputs)`` with respect to its array inputs.

    ``analytic`` maps input names to their claimed gradients; only those inputs are checked."""
    def loss():
        return float(f(**inputs))
    return check_gradients(loss, inputs, analytic, h=h, names=list(analytic), title=title)


__all__ = ["relative_error", "numerical_gradient", "GradRow", "GradReport", "check_gradients",
           "check_model", "check_function", "DEFAULT_H", "DEFAULT_TOL"]
