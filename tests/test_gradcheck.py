"""The gradient checker itself: it passes correct gradients and catches wrong ones."""
import numpy as np
import pytest

from tinyvae.errors import TinyVAEError
from tinyvae.gradcheck import (GradReport, check_function, check_gradients, check_model,
                               numerical_gradient, relative_error)
from tinyvae.layers import MLP, dense_backward, dense_forward


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 0.5])
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * np.array([1.0, 4.0, 0.25]), rtol=1e-9)
    np.testing.assert_array_equal(x, [1.0, -2.0, 0.5])      # restored after perturbing


def test_relative_error_definition():
    a, n = np.array([1.0, 2.0]), np.array([1.0, 2.5])
    assert relative_error(a, n) == pytest.approx(0.5 / (2.0 + 2.5))
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0    # the 1e-8 floor, no 0/0


class WrongDense:
    """A dense layer whose backward forgets to transpose-accumulate db (sums the wrong axis)."""

    def __init__(self, bug, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
        self.x = rng.standard_normal((5, 4))
        self.dout = rng.standard_normal((5, 3))
        self.bug = bug

    def loss_and_grads(self):
        out, cache = dense_forward(self.x, self.params["W"], self.params["b"])
        _, dW, db = dense_backward(self.dout, cache)
        if self.bug == "db_mean":
            db = self.dout.mean(axis=0)                       # mean instead of sum over the batch
        elif self.bug == "dW_factor":
            dW = dW * (1 + 1e-4)                              # a gradient off by 0.01 %
        elif self.bug == "sign":
            dW = -dW
        return float(np.sum(out * self.dout)), {"W": dW, "b": db}


@pytest.mark.parametrize("bug, culprit", [("db_mean", "b"), ("dW_factor", "W"), ("sign", "W")])
def test_checker_catches_a_wrong_backward(bug, culprit):
    report = check_model(WrongDense(bug))
    assert not report.passed()
    assert report.worst.name == culprit
    assert report[culprit].error > 1e-5
    assert "worst entry" in str(report) and culprit in str(report)


def test_checker_passes_the_right_backward():
    report = check_model(WrongDense(bug=None))
    assert report.passed() and report.max_error < 1e-9


def test_checker_catches_a_wrong_activation_derivative():
    """Using tanh' = 1 - a^2 (the pre-activation) instead of 1 - h^2 is a classic slip."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 4))
    dh = rng.standard_normal((4, 4))
    wrong = dh * (1 - a * a)
    report = check_function(lambda a: np.sum(np.tanh(a) * dh), {"a": a}, {"a": wrong})
    assert not report.passed()


def test_checker_refuses_float32():
    mlp = MLP((2, 2), dtype="float32")
    with pytest.raises(TinyVAEError, match="float64"):
        check_model(mlp, np.ones((1, 2), np.float32), np.ones((1, 2), np.float32))


def test_checker_copies_gradients_before_perturbing():
    """A model that reuses its gradient buffer would otherwise compare the buffer with itself."""
    mlp = MLP((3, 4, 2), activation="tanh")
    rng = np.random.default_rng(0)
    report = check_model(mlp, rng.standard_normal((3, 3)), rng.standard_normal((3, 2)))
    assert report.passed()
    assert isinstance(report, GradReport) and {r.name for r in report.rows} == set(mlp.params)


def test_shape_mismatch_is_reported():
    p = {"w": np.zeros(3)}
    with pytest.raises(TinyVAEError, match="shape"):
        check_gradients(lambda: 0.0, p, {"w": np.zeros(4)})


@pytest.mark.parametrize("bad, match", [(dict(h=0), "positive"), (dict(h="x"), "positive"),
                                        (dict(names=["nope"]), "no parameter .*'nope'.* the names are w"),
                                        (dict(names=[]), "nothing to check")])
def test_a_bad_step_or_name_is_a_clear_error(bad, match):
    with pytest.raises(TinyVAEError, match=match):
        check_gradients(lambda: 0.0, {"w": np.zeros(3)}, {"w": np.zeros(3)}, **bad)


def test_a_relu_kink_failure_comes_with_a_hint():
    """Zero biases put dead ReLU units on the kink: the check reports an error near 1 with a
    correct backward. The report says why, without passing the check."""
    rng = np.random.default_rng(0)
    import tinyvae as tv
    ae = tv.Autoencoder(4, hidden_dims=(3,), code_dim=2, dtype="float64")
    report = check_model(ae, rng.random((3, 4)))
    assert not report.passed()
    assert "relu" in report.hint and "biases" in str(report)
    smooth = tv.Autoencoder(4, hidden_dims=(3,), code_dim=2, activation="tanh", dtype="float64")
    ok = check_model(smooth, rng.random((3, 4)))
    assert ok.passed() and ok.hint == ""


def test_relative_error_of_small_gradients_is_relative():
    """The 1e-8 floor only guards 0/0: gradients of size 1e-4 are judged relative to their own
    size (a floor of 1 would turn the check into an absolute one and pass them all)."""
    a, n = np.array([1e-4, -3e-4]), np.array([2e-4, -3e-4])
    assert relative_error(a, n) == pytest.approx(1e-4 / (3e-4 + 3e-4), rel=1e-12)
    # f(a) = 1e-6 sum(a^2) has gradient 2e-6 a; claiming half of it must fail the check
    a = np.array([0.3, -1.2, 0.7])
    report = check_function(lambda a: 1e-6 * np.sum(a**2), {"a": a}, {"a": 1e-6 * a})
    assert not report.passed() and report.max_error == pytest.approx(1 / 3, rel=1e-3)
    ok = check_function(lambda a: 1e-6 * np.sum(a**2), {"a": a}, {"a": 2e-6 * a})
    assert ok.passed()


def test_passed_without_parentheses_is_the_verdict_not_a_bound_method():
    """`assert report.passed` (parentheses forgotten) had passed every report, a wrong gradient
    included: a bound method is always true."""
    from tinyvae.gradcheck import GradReport, GradRow
    bad = GradReport([GradRow("W", (2,), 1e-3, (0,), 1.0, 1.001)])
    good = GradReport([GradRow("W", (2,), 1e-9, (0,), 1.0, 1.0)])
    assert not bad.passed and not bad.passed() and bad.passed(1e-2)
    assert good.passed and good.passed() and not good.passed(1e-10)
    with pytest.raises(AssertionError):
        assert bad.passed
    assert "False (max relative error 1.00e-03" in repr(bad.passed)
    assert bad.passed == False and good.passed == True and good.passed != False  # noqa: E712 (as students write it)
    numpy_error = GradReport([GradRow("W", (2,), np.float64(1e-9), (0,), 1.0, 1.0)])
    assert bool(numpy_error.passed) is True and numpy_error.passed() is True      # a bool, not numpy.bool_


def test_an_interrupted_numerical_gradient_leaves_the_array_as_it_was():
    """A Ctrl-C (or an error) inside loss() had left one weight moved by h for good."""
    w = np.array([0.5, -1.0, 2.0])
    before = w.copy()
    calls = []

    def loss():
        calls.append(w.copy())
        if len(calls) == 4:                          # the second entry's minus side
            raise KeyboardInterrupt
        return float(np.sum(w ** 2))
    with pytest.raises(KeyboardInterrupt):
        numerical_gradient(loss, w)
    assert not np.array_equal(calls[-1], before)     # it was interrupted with an entry moved
    assert np.array_equal(w, before)
