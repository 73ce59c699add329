"""The experiments and plots of lessons 3-4 (tinyvae.figures_ae): geometry helpers against cases
with known answers, the sweeps on small data, and the plot functions."""
import io

import numpy as np
import pytest
from matplotlib.figure import Figure

import tinyvae as tv
from tinyvae import figures_ae as fa
from tinyvae.figures import FIGURES


@pytest.fixture(scope="module")
def digits():
    ds = tv.load_dataset("digits")
    return ds.x_train[:400], ds.x_test[:60]


def _draws(fig):
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and (fig._suptitle is None or fig._suptitle.get_text())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.tell() > 1000


# --------------------------------------------------------------------------------------------
# geometry

def test_principal_angles_known_cases(rng):
    theta = 0.3
    e1, e2, e3 = np.eye(3)
    a = fa.principal_angles_deg(e1[:, None], (np.cos(theta) * e1 + np.sin(theta) * e2)[:, None])
    assert a == pytest.approx([np.degrees(theta)])
    assert fa.principal_angles_deg(e1[:, None], e3[:, None]) == pytest.approx([90.0])
    A = rng.standard_normal((10, 3))
    mix = rng.standard_normal((3, 3)) + 3 * np.eye(3)                 # any invertible change of basis
    np.testing.assert_allclose(fa.principal_angles_deg(A, A @ mix), 0, atol=1e-5)
    # two planes in R^3 share a line (angle 0) and meet at theta in the other direction
    P = np.stack([e1, e2], axis=1)
    Q = np.stack([e1, np.cos(theta) * e2 + np.sin(theta) * e3], axis=1)
    np.testing.assert_allclose(fa.principal_angles_deg(P, Q), [0, np.degrees(theta)], atol=1e-6)


class _Map:
    """A stand-in with the transform / inverse_transform interface."""

    def __init__(self, transform, inverse=lambda h: h):
        self.transform, self.inverse_transform = transform, inverse


def test_reconstruction_error_is_half_the_squared_distance():
    x = np.array([[3.0, 4.0], [0.0, 1.0]])
    assert fa.reconstruction_error(_Map(lambda v: v), x) == 0
    assert fa.reconstruction_error(_Map(lambda v: 0 * v), x) == pytest.approx((12.5 + 0.5) / 2)


def test_project_onto_rows(rng):
    W = rng.standard_normal((2, 5))
    inside = np.array([2.0, -1.0]) @ W
    normal = np.linalg.svd(W)[2][-1]                                  # orthogonal to both rows
    out = fa.project_onto_rows(np.stack([inside, normal]), W)
    np.testing.assert_allclose(out[0], inside, atol=1e-12)
    np.testing.assert_allclose(out[1], 0, atol=1e-12)


def test_nearest_on_curve_by_geometry():
    t0 = np.array([-1.0, 0.2, 0.9])
    on = fa.curve(t0)
    nearest, toward = fa.nearest_on_curve(on)
    np.testing.assert_allclose(toward, 0, atol=1e-3)                  # grid step 3.2 / 6400
    # step a distance d off the curve along its normal: the nearest point is where we started
    tangent = np.stack([np.ones_like(t0), 1.2 * np.cos(2 * t0)], axis=1)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) / np.linalg.norm(tangent, axis=1)[:, None]
    d = 0.05                                                          # well inside the curvature radius
    nearest, toward = fa.nearest_on_curve(on + d * normal)
    np.testing.assert_allclose(nearest, on, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(toward, axis=1), d, rtol=0.02)


class _Oracle:
    def __init__(self, fn):
        self.reconstruct = fn


def test_denoising_field_cosines():
    x_tilde = fa.curve(np.linspace(-1, 1, 7)) + np.array([0.0, 0.2])
    nearest, toward = fa.nearest_on_curve(x_tilde)
    _, cos, ratio = fa.denoising_field(_Oracle(lambda x: nearest), x_tilde, toward)
    np.testing.assert_allclose(cos, 1, atol=1e-12)
    np.testing.assert_allclose(ratio, 1, atol=1e-12)
    _, cos, ratio = fa.denoising_field(_Oracle(lambda x: 2 * x - nearest), x_tilde, toward)
    np.testing.assert_allclose(cos, -1, atol=1e-12)


# --------------------------------------------------------------------------------------------
# experiments on small data

def test_linear_autoencoder_finds_a_planted_subspace(rng):
    basis = np.linalg.qr(rng.standard_normal((6, 2)))[0]              # (6, 2) the planted plane
    x = 0.5 + rng.standard_normal((300, 2)) * [0.3, 0.2] @ basis.T + 0.01 * rng.standard_normal((300, 6))
    ae = fa.linear_autoencoder(x, 2, schedule=((300, 1e-2), (100, 1e-3)))
    assert fa.principal_angles_deg(ae.params["dec.W0"].T, basis).max() < 3


def test_sparse_sweep_makes_codes_sparser(digits):
    x_train, x_test = digits
    r = fa.sparse_sweep(x_train, x_test, (0.0, 0.3), code_dim=32, epochs=5)
    assert r["frac_zero"].shape == (2,) and r["codes"][0].shape == (60, 32)
    assert r["frac_zero"][1] > r["frac_zero"][0] + 0.1
    assert r["l1"][1] < 0.6 * r["l1"][0]
    h = r["codes"][1]
    assert r["active"][1] == pytest.approx(np.mean(np.sum(np.abs(h) >= 0.01, axis=1)))
    _draws(fa.plot_sparse_codes(r))


def test_contractive_sweep_jacobians_match_finite_differences(digits):
    x_train, x_test = digits
    x1 = x_test[:1].astype(np.float64)
    r = fa.contractive_sweep(x_train, x1, (0.0, 0.1), code_dim=6, epochs=3)
    ae = r["models"][1]
    eps = 1e-3

    def jac_fd(fn):
        cols = [(fn(x1 + eps * e) - fn(x1 - eps * e))[0] / (2 * eps) for e in np.eye(64)]
        return np.stack(cols, axis=-1).astype(np.float64)

    J = jac_fd(lambda v: ae.encode(v).astype(np.float64))              # (6, 64)
    J_r = jac_fd(lambda v: ae.reconstruct(v).astype(np.float64))       # (64, 64)
    assert r["jac_fro2"][1] == pytest.approx(np.sum(J**2), rel=1e-2)
    assert r["rec_jac_fro2"][1] == pytest.approx(np.sum(J_r**2), rel=1e-2)
    np.testing.assert_allclose(r["singular_values"][1], np.linalg.svd(J, compute_uv=False), rtol=1e-2)
    # the gain along v_k is how far the reconstruction moves per unit step of x along v_k,
    # v_k the eigenvectors of the training covariance (largest first)
    variance, V = np.linalg.eigh(np.cov(x_train.T.astype(np.float64)))
    variance, V = variance[::-1], V[:, ::-1]                           # (64,), (64, 64) columns v_k
    np.testing.assert_allclose(r["variance"][:5], variance[:5], rtol=1e-6)
    np.testing.assert_allclose(r["gain"][1][:5], np.linalg.norm(J_r @ V[:, :5], axis=0), rtol=1e-2)
    # and along an orthonormal basis the gains add up (in squares) to the Frobenius norm
    assert np.sum(r["gain"][1] ** 2) == pytest.approx(r["rec_jac_fro2"][1], rel=1e-6)
    _draws(fa.plot_contractive_jacobian(r))


def test_local_contraction_measures_the_local_singular_vectors_and_the_tied_penalty_aligns_them():
    """The SVD of dh/dx at points of the curve, against a finite-difference Jacobian of
    ae.encode and the curve's tangent by differences; with the penalty the code follows the
    tangent (v_1 along it) and contracts across it (s_2 / s_1 and the normal gain drop)."""
    r = fa.local_contraction((0.0, 0.3), code_dim=16, n_train=600, epochs=60, n_points=5)
    t = np.linspace(-1.3, 1.3, 5)
    step = 1e-6
    tangent = (fa.curve(t + step) - fa.curve(t - step)) / (2 * step)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    np.testing.assert_allclose(r["tangent"], tangent, atol=1e-8)
    for i, ae in enumerate(r["models"]):
        assert ae.tied and ae.contractive == r["lambdas"][i]
        for n, x in enumerate(r["points"]):
            cols = [(ae.encode(x + 1e-3 * e).astype(np.float64) - ae.encode(x - 1e-3 * e)) / 2e-3 for e in np.eye(2)]
            J = np.stack(cols, axis=-1)[0]                                   # (C, 2)
            _, s, Vt = np.linalg.svd(J)
            np.testing.assert_allclose(r["s"][i][n], s, rtol=2e-2, atol=1e-4)
            assert abs(np.dot(Vt[0], tangent[n])) == pytest.approx(r["cosine"][i][n], abs=2e-2)
            J_r = np.stack([(ae.reconstruct(x + 1e-3 * e) - ae.reconstruct(x - 1e-3 * e))[0] / 2e-3
                            for e in np.eye(2)], axis=-1)                    # (2, 2)
            assert np.linalg.norm(J_r @ tangent[n]) == pytest.approx(r["gain_tangent"][i][n], rel=2e-2)
    ratio = [np.median(s[:, 1] / s[:, 0]) for s in r["s"]]
    assert ratio[1] < 0.6 * ratio[0]                                   # contracted across the curve
    assert np.mean(r["cosine"][1]) > np.mean(r["cosine"][0]) + 0.2      # v_1 turned to the tangent
    assert np.mean(r["gain_normal"][1]) < 0.7 * np.mean(r["gain_tangent"][1])
    _draws(fa.plot_local_contraction(r))


def test_denoising_experiment_and_plot():
    r = fa.denoising_experiment(noise_stds=(0.2, 0.0), n_train=500, n_test=100, epochs=20)
    assert len(r["mean_cosine"]) == 2 and r["field"][0].shape == (100, 2)
    assert r["mean_cosine"][0] > r["mean_cosine"][1]                 # noise makes the field point home
    assert r["median_length_ratio"][1] < 0.5                          # without noise: near the identity
    _draws(fa.plot_denoising_field(r))


def test_pca_comparison_and_plots(digits):
    x_train, x_test = digits
    r = fa.pca_comparison(x_train, x_test, (2, 3), linear_schedule=((60, 1e-2), (30, 1e-3)), nonlinear_epochs=3)
    assert list(r["code_dims"]) == [2, 3] and len(r["angles"]) == 2 and r["angles"][1].shape == (3,)
    assert np.all(r["pca_train"][1] <= r["linear_train"][1] * (1 + 1e-6))   # PCA is optimal on train
    assert r["pca_train"][1] < r["pca_train"][0]                             # more components, less error
    _draws(fa.plot_linear_ae_vs_pca(r, (8, 8)))
    models = {"PCA": r["models"]["pca"][0], "AE": r["models"]["nonlinear"][0]}
    _draws(fa.plot_reconstruction_comparison(x_test[:5], models, (8, 8)))


def test_registered_figures():
    names = {name for name, _, _ in FIGURES}
    assert {"linear_ae_vs_pca", "denoising_field", "sparse_codes", "contractive_jacobian", "local_contraction",
            "pca_vs_autoencoder_digits"} <= names


def test_the_smoothed_score_field_is_sigma2_times_the_gradient_of_the_blurred_log_density():
    """Against central differences of log p_sigma(x~) = log 1/N sum_i N(x~; x_i, sigma^2 I),
    computed here with scipy's logsumexp."""
    from scipy.special import logsumexp
    r = np.random.default_rng(3)
    x_train, x_tilde, sigma = r.standard_normal((40, 2)), r.standard_normal((6, 2)), 0.3

    def log_p(x):                                                      # (2,) -> float
        return logsumexp(-np.sum((x - x_train) ** 2, axis=1) / (2 * sigma**2)) - np.log(40) \
            - np.log(2 * np.pi * sigma**2)
    h = 1e-6
    grad = np.array([[(log_p(x + h * e) - log_p(x - h * e)) / (2 * h) for e in np.eye(2)] for x in x_tilde])
    np.testing.assert_allclose(fa.smoothed_score_field(x_tilde, x_train, sigma), sigma**2 * grad, rtol=1e-6, atol=1e-9)
