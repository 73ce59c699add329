"""``tinyvae gradcheck``: the gradient-check tables for layers and models, in float64.

Each suite returns a list of (configuration name, GradReport). The command prints them and
exits with status 1 when any relative error exceeds the bound (1e-7).
"""
import numpy as np

from .errors import TinyVAEError
from .gradcheck import DEFAULT_TOL, check_function, check_model
from .kernels import ACTIVATIONS
from .layers import MLP, activation_backward, activation_forward, dense_backward, dense_forward


def _away_from_kinks(rng, shape, margin=0.1):
    """Standard-normal values pushed at least ``margin`` away from 0 (relu's kink)."""
    a = rng.standard_normal(shape)
    return a + np.sign(a) * margin


def layer_suite(seed=0):
    """The dense layer, every activation, and an MLP with every activation."""
    rng = np.random.default_rng(seed)
    reports = []
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((5, 3))                   # upstream gradient dL/dA
    dx, dW, db = dense_backward(dout, dense_forward(x, W, b)[1])
    reports.append(("dense", check_function(
        lambda x, W, b: np.sum(dense_forward(x, W, b)[0] * dout),
        {"x": x, "W": W, "b": b}, {"x": dx, "W": dW, "b": db})))
    for kind in ACTIVATIONS:
        a = _away_from_kinks(rng, (6, 5)) * 3
        dh = rng.standard_normal(a.shape)
        da = activation_backward(dh, activation_forward(a, kind)[1])
        reports.append((f"activation {kind}", check_function(
            lambda a: np.sum(activation_forward(a, kind)[0] * dh), {"a": a}, {"a": da})))
    for kind in ACTIVATIONS:
        mlp = MLP((5, 7, 4, 3), activation=kind, seed=seed)
        x = rng.standard_normal((6, 5))
        dout = rng.standard_normal((6, 3))
        reports.append((f"MLP 5-7-4-3 {kind}", check_model(mlp, x, dout)))
    return reports


def _suites():
    suites = {"layers": layer_suite}
    try:
        from .vae import gradcheck_suite as vae_suite
        suites["vae"] = vae_suite
    except ImportError:
        pass
    try:
        from .autoencoder import gradcheck_suite as ae_suite
        suites["ae"] = ae_suite
    except ImportError:
        pass
    return suites


def run_gradcheck(which="all", verbose=True, tol=DEFAULT_TOL):
    """Print the tables for ``which`` (layers | vae | ae | all); return 0 if all pass, else 1."""
    suites = _suites()
    if which != "all" and which not in suites:
        raise TinyVAEError(f"unknown --model {which!r}: expected one of {', '.join(list(suites) + ['all'])}")
    names = list(suites) if which == "all" else [which]
    worst, failed = 0.0, []
    for name in names:
        for config, report in suites[name]():
            ok = report.passed(tol)
            worst = max(worst, report.max_error)
            if not ok:
                failed.append(config)
            if verbose:
                print(f"\n== {name}: {config}  [{'ok' if ok else 'FAIL'}]")
                print(report)
            else:
                print(f"{'ok  ' if ok else 'FAIL'} {report.max_error:9.2e}  {name}: {config}")
    print(f"\n{len(failed)} configuration(s) above {tol:g}; worst relative error {worst:.2e}")
    for config in failed:
        print(f"FAIL: {config}")
    return 1 if failed else 0
