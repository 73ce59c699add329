"""The computations and plots of tinyvae.figures_backprop (lessons 1-2)."""
import numpy as np
import pytest

from tinyvae.figures_backprop import (activation_curves, mlp_graph, plot_activations,
                                      plot_mlp_graph, plot_step_size, step_size_errors,
                                      step_size_sweep)
from tinyvae.kernels import KINKED
from tinyvae.layers import MLP


class Cubic:
    """L(w) = sum w^3: the central difference is off by exactly h^2 per entry (L''' = 6)."""

    def __init__(self, w):
        self.params = {"w": np.array(w, dtype=np.float64)}

    def loss_and_grads(self):
        w = self.params["w"]
        return float(np.sum(w ** 3)), {"w": 3 * w ** 2}


def test_step_size_errors_follow_the_taylor_series_of_a_cubic():
    w = np.array([0.5, -1.0, 2.0])
    hs = np.array([1e-3, 1e-2, 1e-1])
    errors = step_size_errors(Cubic(w), (), "w", hs)
    a = 3 * w ** 2                                   # the exact gradient; numeric = a + h^2
    expected = hs ** 2 / (np.max(np.abs(a)) + np.max(np.abs(a + hs[:, None] ** 2), axis=1))
    np.testing.assert_allclose(errors, expected, rtol=1e-4)


@pytest.fixture(scope="module")
def sweep():
    x = np.random.default_rng(0).uniform(0, 1, (4, 10))
    return step_size_sweep(x, hs=np.array([1e-9, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]), hidden_dims=(6,))


def test_sweep_float64_beats_float32_by_orders_of_magnitude(sweep):
    e64, e32 = sweep["errors"]["float64"], sweep["errors"]["float32"]
    assert sweep["best_error"]["float64"] < 1e-8          # float64: ~eps^(2/3) = 4e-11 times O(1)
    assert sweep["best_error"]["float32"] > 1e-6          # float32: ~eps^(2/3) = 2e-5 times O(1)
    assert sweep["best_h"]["float32"] > sweep["best_h"]["float64"]
    assert e64[2] < 1e-7                                  # the checker's default h = 1e-5 passes
    assert e32[0] > 0.5                                   # h = 1e-9 is below float32's resolution
    # at h = 0.1 the truncation error, the same function's h^2 L'''/6, dominates in both dtypes
    assert e32[-1] == pytest.approx(e64[-1], rel=0.05)
    assert 50 < e64[-1] / e64[-2] < 200                   # and it grows like h^2: x100 per decade


def test_sweep_guide_constants(sweep):
    """The two guide lines predict the measured errors where each dominates: round-off
    eps K / h on the left arm of each U (to within an order of magnitude: K is a scale, not a
    bound) and truncation C h^2 on the right arm of the float64 U."""
    h, K, C = sweep["h"], sweep["roundoff"], sweep["truncation"]
    for dtype, left in (("float64", slice(0, 3)), ("float32", slice(1, 6))):   # h <= 1e-5; 1e-6..1e-2
        ratio = sweep["errors"][dtype][left] / (sweep["eps"][dtype] * K / h[left])
        assert np.all((0.05 < ratio) & (ratio < 2)), (dtype, ratio)
    np.testing.assert_allclose(sweep["errors"]["float64"][3:] / (C * h[3:] ** 2), 1, rtol=0.05)
    fig = plot_step_size(sweep)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert any("default h" in t.get_text() for t in ax.texts)


def test_step_size_plot_keeps_its_notes_on_the_axes_for_any_grid():
    """A sweep that does not reach the checker's default h = 1e-5 draws no note for it (it had
    been placed outside the axes)."""
    x = np.random.default_rng(0).uniform(0, 1, (4, 10))
    coarse = step_size_sweep(x, hs=np.array([1e-4, 1e-3, 1e-2, 1e-1]), hidden_dims=(6,))
    ax = plot_step_size(coarse).axes[0]
    lo, hi = ax.get_xlim()
    assert not any("default h" in t.get_text() for t in ax.texts)
    for t in ax.texts:
        if t.get_transform() == ax.transData:
            assert lo <= t.get_position()[0] <= hi, t.get_text()


def test_activation_derivatives_agree_with_finite_differences_and_known_values():
    curves = activation_curves(np.array([-3.0, -0.5, 0.0, 0.7, 2.0]))
    for kind, (a, f, df, numeric) in curves.items():
        smooth = a != 0 if kind in KINKED else np.ones(a.shape, bool)
        np.testing.assert_allclose(df[smooth], numeric[smooth], atol=1e-8, err_msg=kind)
    zero = 2                                               # a = 0
    assert curves["sigmoid"][2][zero] == pytest.approx(0.25)
    assert curves["tanh"][2][zero] == pytest.approx(1.0)
    assert curves["softplus"][2][zero] == pytest.approx(0.5)
    assert curves["softplus"][1][zero] == pytest.approx(np.log(2))
    fig = plot_activations(curves)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_mlp_graph_has_the_shapes_of_the_mlp():
    nodes, edges = mlp_graph(MLP((5, 4, 3), "relu"), batch=7)
    assert [shape for _, shape in nodes] == [(7, 5), (7, 4), (7, 4), (7, 3), ()]
    assert len(edges) == len(nodes) - 1
    assert "5×4" in edges[0][2] and "4×3" in edges[2][2]           # dW shapes under the dense layers
    nodes, _ = mlp_graph(MLP((5, 4, 3), "relu", final_activation="sigmoid"))
    assert len(nodes) == 6                                          # a non-identity output adds h_2
    fig = plot_mlp_graph(MLP((5, 4, 3), "relu"))
    assert fig.axes[0].get_title()
