"""The autoencoder family of ch. 14: gradients against finite differences, loss values against
formulas computed here, and what each regularizer is for (PCA subspace, denoising field,
contraction), on small data so the file runs in seconds."""
import copy
import json
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

import tinyvae as tv
from tinyvae import kernels
from tinyvae.autoencoder import gradcheck_configs, gradcheck_problem
from tinyvae.checks import run_gradcheck
from tinyvae.cli import main
from tinyvae.errors import TinyVAEError
from tinyvae.gradcheck import check_model
from tinyvae.kernels import ACTIVATIONS

TOL = 1e-7


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0                      # (1797, 64) in [0, 1]


def principal_angles_deg(A, B):
    """Principal angles between the column spaces of A and B: arccos of the singular values
    of Q_A^T Q_B, with Q_A, Q_B orthonormal bases (Bjorck & Golub 1973)."""
    QA, _ = np.linalg.qr(A)
    QB, _ = np.linalg.qr(B)
    cosines = np.linalg.svd(QA.T @ QB, compute_uv=False)
    return np.degrees(np.arccos(np.clip(cosines, -1, 1)))


def jacobian_fd(encode, x, h=1e-5):
    """dh/dx (N, C, D) by central differences of ``encode``."""
    cols = []
    for d in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[d] = h
        cols.append((np.asarray(encode(x + e), np.float64) - encode(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


# --------------------------------------------------------------------------------------------
# gradients

@pytest.mark.parametrize("name, config", gradcheck_configs(), ids=[n for n, _ in gradcheck_configs()])
def test_gradients_of_every_variant(name, config):
    ae, x, x_input = gradcheck_problem(config)
    assert not np.allclose(x, x_input)                    # the encoder sees a corrupted input
    report = check_model(ae, x, x_input)
    assert report.max_error <= TOL, f"{name}\n{report}"


def test_gradcheck_configs_cover_every_variant():
    configs = [c for _, c in gradcheck_configs()]
    for act in ACTIVATIONS:
        assert any(c.get("contractive", 0) > 0 and c.get("activation", "relu") == act for c in configs)
        assert any(not c.get("contractive", 0) and c.get("activation", "relu") == act for c in configs)
    assert {c.get("loss", "mse") for c in configs} == {"mse", "bce"}
    assert {len(c["hidden_dims"]) for c in configs} >= {0, 1, 2}
    assert any(c.get("sparse_l1", 0) > 0 and c.get("contractive", 0) > 0 for c in configs)
    assert any(c.get("noise_std", 0) > 0 for c in configs) and any(c.get("mask_prob", 0) > 0 for c in configs)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "identity"])
def test_gradients_with_default_x_input(activation):
    config = dict(input_dim=4, hidden_dims=(), code_dim=3, activation=activation,
                  sparse_l1=0.2, contractive=0.4)
    ae, x, _ = gradcheck_problem(config, seed=3)
    assert check_model(ae, x).max_error <= TOL


def test_gradient_check_fails_without_the_second_derivative(monkeypatch):
    """The contractive gradient eq. (3) needs f''; dropping it must be caught."""
    ae, x, x_input = gradcheck_problem(dict(input_dim=5, hidden_dims=(), code_dim=3,
                                            activation="tanh", contractive=0.7))
    assert check_model(ae, x, x_input).passed()
    monkeypatch.setattr(kernels, "activation_second", lambda h, kind, out=None: np.zeros_like(h))
    report = check_model(ae, x, x_input)
    assert not report.passed() and report.max_error > 1e-4
    assert report.worst.name in ("enc.W0", "enc.b0")


def test_cli_gradcheck_covers_every_variant(capsys):
    assert main(["gradcheck", "--model", "ae", "--quiet"]) == 0
    out = capsys.readouterr().out
    for name, _ in gradcheck_configs():
        assert f"ae: {name}" in out
    assert "0 configuration(s) above 1e-07" in out


def test_cli_gradcheck_exits_nonzero_on_a_wrong_gradient(monkeypatch, capsys):
    monkeypatch.setattr(kernels, "activation_second", lambda h, kind, out=None: np.zeros_like(h))
    assert run_gradcheck("ae", verbose=False) == 1
    out = capsys.readouterr().out
    assert "FAIL: contractive=0.7, 0 hidden, tanh" in out
    assert "FAIL: contractive=0.7, 0 hidden, relu" not in out     # relu'' = 0 anyway


def test_backends_agree(backend):
    """The numba kernels against the NumPy twins (a numba-against-numba case had checked nothing)."""
    config = dict(input_dim=6, hidden_dims=(), code_dim=4, activation="sigmoid", loss="bce",
                  sparse_l1=0.1, contractive=0.3)
    ae, x, x_input = gradcheck_problem(config, seed=5)
    backend("numba")
    loss_nb, g = ae.loss_and_grads(x, x_input)
    g_nb = {k: v.copy() for k, v in g.items()}
    backend("numpy")
    loss, g = ae.loss_and_grads(x, x_input)
    assert loss == pytest.approx(loss_nb, rel=1e-12)
    for k in g:
        np.testing.assert_allclose(g[k], g_nb[k], rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------
# loss values against formulas written here

@pytest.mark.parametrize("name, config", gradcheck_configs(), ids=[n for n, _ in gradcheck_configs()])
def test_training_and_evaluation_compute_the_same_loss(name, config):
    """The training pass (loss_and_grads) and the evaluation (loss_terms) write the loss and each
    penalty separately; a term added to one and not the other would show here, in every
    configuration the gradient checker runs."""
    ae, x, x_input = gradcheck_problem(config, seed=5)
    rec, penalty = ae.loss_terms(x, x_input)
    loss, _ = ae.loss_and_grads(x, x_input)
    assert loss == pytest.approx(np.mean(rec + penalty), rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu"])
def test_loss_value_matches_the_formulas(loss, activation, rng):
    ae = tv.Autoencoder(5, hidden_dims=(), code_dim=3, activation=activation, loss=loss,
                        sparse_l1=0.3, contractive=0.2, seed=1, dtype="float64")
    x = rng.uniform(0, 1, (7, 5))
    x_input = x + 0.1 * rng.standard_normal(x.shape)
    h = ae.encode(x_input)                                       # (N, C)
    r = ae.decode(h)                                             # (N, D)
    if loss == "mse":
        rec = 0.5 * np.sum((r - x) ** 2, axis=1)
    else:
        rec = -np.sum(x * np.log(r) + (1 - x) * np.log(1 - r), axis=1)
    sparse = 0.3 * np.sum(np.abs(h), axis=1)
    J = jacobian_fd(ae.encode, x_input)                          # (N, C, D)
    contractive = 0.2 * np.sum(J**2, axis=(1, 2))
    expected = np.mean(rec + sparse + contractive)
    value, _ = ae.loss_and_grads(x, x_input)
    assert value == pytest.approx(expected, rel=1e-7)
    terms = ae.evaluate(x)                                       # on the clean input
    h0 = ae.encode(x)
    assert terms["penalty"] == pytest.approx(np.mean(0.3 * np.abs(h0).sum(1)
                                                     + 0.2 * np.sum(jacobian_fd(ae.encode, x)**2, axis=(1, 2))), rel=1e-7)
    assert terms["loss"] == pytest.approx(terms["rec"] + terms["penalty"])
    assert terms["loss"] == pytest.approx(ae.loss_and_grads(x)[0], rel=1e-12)


def test_bce_is_stable_for_huge_logits():
    ae = tv.Autoencoder(3, hidden_dims=(), code_dim=2, activation="identity", loss="bce", dtype="float64")
    ae.params["dec.b0"][...] = [1e4, -1e4, 1e4]
    ae.params["dec.W0"][...] = 0
    x = np.array([[1.0, 0.0, 0.0]])
    loss, grads = ae.loss_and_grads(x)
    assert loss == pytest.approx(1e4)                            # only the third logit is wrong
    np.testing.assert_allclose(grads["dec.b0"], [0, 0, 1], atol=1e-12)
    np.testing.assert_array_equal(ae.decode(np.zeros((1, 2))), [[1.0, 0.0, 1.0]])


@pytest.mark.parametrize("hidden_dims", [(), (7,), (6, 4)])
def test_jacobian_matches_finite_differences(hidden_dims, rng):
    ae = tv.Autoencoder(5, hidden_dims=hidden_dims, code_dim=3, activation="tanh", dtype="float64")
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(ae.jacobian(x), jacobian_fd(ae.encode, x), rtol=1e-6, atol=1e-9)


def test_default_x_input_is_x(rng):
    ae = tv.Autoencoder(4, hidden_dims=(5,), code_dim=2, activation="tanh", sparse_l1=0.1, dtype="float64")
    x = rng.standard_normal((3, 4))
    loss_a, g = ae.loss_and_grads(x)
    g_a = {k: v.copy() for k, v in g.items()}
    loss_b, g_b = ae.loss_and_grads(x, x.copy())
    assert loss_a == loss_b
    for k in g_a:
        np.testing.assert_array_equal(g_a[k], g_b[k])
    loss_c, _ = ae.loss_and_grads(x, x + 0.5)
    assert loss_c != loss_a


# --------------------------------------------------------------------------------------------
# training steps and corruption

def test_training_step_without_noise_is_the_clean_loss(rng):
    ae = tv.Autoencoder(4, hidden_dims=(5,), code_dim=2, sparse_l1=0.1, dtype="float64")
    x = rng.uniform(0, 1, (6, 4))
    loss, grads, terms = ae.training_loss_and_grads(x, np.random.default_rng(0))
    assert set(terms) == {"rec", "penalty"}
    assert loss == pytest.approx(terms["rec"] + terms["penalty"])
    assert loss == pytest.approx(ae.loss_and_grads(x)[0], rel=1e-14)


@pytest.mark.parametrize("corruption", [dict(noise_std=0.3), dict(mask_prob=0.5)])
def test_training_step_corrupts_the_input_reproducibly(corruption, rng):
    ae = tv.Autoencoder(6, hidden_dims=(5,), code_dim=2, activation="tanh", dtype="float64", **corruption)
    x = rng.uniform(0.1, 1, (8, 6))
    x_copy = x.copy()
    clean = ae.loss_and_grads(x)[0]
    a = ae.training_loss_and_grads(x, np.random.default_rng(7))[0]
    b = ae.training_loss_and_grads(x, np.random.default_rng(7))[0]
    c = ae.training_loss_and_grads(x, np.random.default_rng(8))[0]
    assert a == b and a != c and a != clean
    np.testing.assert_array_equal(x, x_copy)                         # the clean target is untouched
    x_tilde = ae.corrupt(x, np.random.default_rng(7))                # the same draw, made visible
    assert ae.loss_and_grads(x, x_tilde)[0] == pytest.approx(a, rel=1e-12)


def test_corruption_statistics():
    x = np.ones((400, 50))
    masked = tv.Autoencoder(50, code_dim=2, mask_prob=0.3).corrupt(x, np.random.default_rng(0))
    assert set(np.unique(masked)) == {0.0, 1.0}
    assert np.mean(masked == 0) == pytest.approx(0.3, abs=0.01)        # 20000 coordinates
    noisy = tv.Autoencoder(50, code_dim=2, noise_std=0.2, dtype="float64").corrupt(x, np.random.default_rng(0))
    assert np.mean(noisy - x) == pytest.approx(0, abs=0.005)
    assert np.std(noisy - x) == pytest.approx(0.2, rel=0.02)
    np.testing.assert_array_equal(tv.Autoencoder(50, code_dim=2).corrupt(x, np.random.default_rng(0)), x)


# --------------------------------------------------------------------------------------------
# what each model learns

def test_linear_autoencoder_learns_the_principal_subspace(digits):
    """Sec. 14.1: a linear AE with squared error spans the top-k principal subspace."""
    k = 4
    X = digits
    ae = tv.Autoencoder(64, hidden_dims=(), code_dim=k, activation="identity", loss="mse", seed=0)
    tv.fit(ae, X, epochs=150, batch_size=128, lr=1e-2, progress=False)
    tv.fit(ae, X, epochs=400, batch_size=len(X), lr=5e-3, progress=False)   # full batch: settle
    pca = PCA(n_components=k).fit(X)
    angles = principal_angles_deg(ae.params["dec.W0"].T.astype(np.float64), pca.components_.T)
    assert angles.max() < 2.0, angles
    pca_error = np.mean(0.5 * np.sum((pca.inverse_transform(pca.transform(X)) - X) ** 2, axis=1))
    ae_error = np.mean(0.5 * np.sum((ae.inverse_transform(ae.transform(X)) - X) ** 2, axis=1))
    assert ae_error / pca_error < 1.01
    assert ae_error / pca_error > 1 - 1e-4                             # PCA is the optimum
    # and an untrained one is far from both
    fresh = tv.Autoencoder(64, hidden_dims=(), code_dim=k, activation="identity", seed=0)
    assert principal_angles_deg(fresh.params["dec.W0"].T.astype(np.float64), pca.components_.T).max() > 30


def _curve(t):
    return np.stack([t, 0.6 * np.sin(2 * t)], axis=1)                 # a 1-D manifold in 2-D


def _denoising_field_cosine(ae, x_tilde, toward):
    v = ae.reconstruct(x_tilde).astype(np.float64) - x_tilde            # g(f(x~)) - x~
    return np.sum(v * toward, axis=1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(toward, axis=1))


def test_denoising_field_points_to_the_manifold():
    """Fig. 14.4: r(x~) - x~ of a denoising AE points from x~ toward the data manifold."""
    rng = np.random.default_rng(0)
    X = _curve(rng.uniform(-1.5, 1.5, 2000)) + 0.02 * rng.standard_normal((2000, 2))
    x_tilde = _curve(rng.uniform(-1.4, 1.4, 500)) + 0.2 * rng.standard_normal((500, 2))
    grid = _curve(np.linspace(-1.6, 1.6, 6401))                          # the curve, densely
    nearest = grid[np.argmin(((x_tilde[:, None] - grid[None]) ** 2).sum(-1), axis=1)]
    toward = nearest - x_tilde                                           # true direction (500, 2)
    off = np.linalg.norm(toward, axis=1) > 0.05                          # direction well defined
    cos = {}
    for noise_std in (0.2, 0.0):
        ae = tv.Autoencoder(2, hidden_dims=(64,), code_dim=16, activation="relu", noise_std=noise_std)
        tv.fit(ae, X, epochs=60, batch_size=64, lr=3e-3, progress=False)
        cos[noise_std] = _denoising_field_cosine(ae, x_tilde[off], toward[off]).mean()
    assert cos[0.2] > 0.85, cos
    assert cos[0.2] > cos[0.0] + 0.3, cos           # a plain AE learns no such field


def test_contractive_penalty_lowers_the_jacobian_norm(digits):
    """Sec. 14.7: at similar reconstruction error, the CAE's encoder is far less sensitive."""
    x_train, x_test = digits[:1200], digits[1200:1500]
    results = {}
    for lam in (0.0, 0.01):
        ae = tv.Autoencoder(64, hidden_dims=(), code_dim=16, activation="tanh", contractive=lam)
        tv.fit(ae, x_train, epochs=25, batch_size=64, lr=3e-3, progress=False)
        J = jacobian_fd(ae.encode, x_test, h=1e-3)                      # (N, 16, 64)
        rec = np.mean(0.5 * np.sum((ae.reconstruct(x_test) - x_test) ** 2, axis=1))
        results[lam] = (np.mean(np.sum(J**2, axis=(1, 2))), rec)
    (jac_ae, rec_ae), (jac_cae, rec_cae) = results[0.0], results[0.01]
    assert jac_cae < 0.6 * jac_ae, results
    assert rec_cae < 1.05 * rec_ae, results


def test_sparse_penalty_shrinks_the_code(digits):
    codes = {}
    for lam in (0.0, 0.1):
        ae = tv.Autoencoder(64, hidden_dims=(), code_dim=32, activation="relu", sparse_l1=lam)
        tv.fit(ae, digits[:1000], epochs=10, batch_size=64, lr=3e-3, progress=False)
        codes[lam] = ae.encode(digits[1000:1300])                       # (300, 32)
    assert np.abs(codes[0.1]).sum(1).mean() < 0.6 * np.abs(codes[0.0]).sum(1).mean()
    assert np.mean(codes[0.1] == 0) > np.mean(codes[0.0] == 0) + 0.1     # more exact zeros


# --------------------------------------------------------------------------------------------
# scikit-learn style, protocol, shapes

def test_sklearn_style_use(digits):
    X = digits[:300]
    ae = tv.Autoencoder(64, hidden_dims=(16,), code_dim=3)
    assert ae.fit(X, epochs=2, progress=False) is ae
    assert len(ae.history_["loss"]) == 2 and {"rec", "penalty"} <= set(ae.history_)
    np.testing.assert_array_equal(ae.transform(X), ae.encode(X))
    h = ae.transform(X)
    np.testing.assert_array_equal(ae.inverse_transform(h), ae.decode(h))
    np.testing.assert_array_equal(ae.reconstruct(X), ae.decode(ae.encode(X)))
    assert ae.fit_transform(X, epochs=1, progress=False).shape == (300, 3)


def test_protocol_and_checkpoint_config():
    ae = tv.Autoencoder(6, hidden_dims=(5, 4), code_dim=3, activation="softplus", loss="bce",
                        sparse_l1=0.1, noise_std=0.2, mask_prob=0.1, seed=3)
    assert ae.kind == "ae" and ae.input_dim == 6 and ae.dtype == np.float32
    config = json.loads(json.dumps(ae.config))
    twin = tv.Autoencoder(**config)
    assert twin.config == ae.config
    np.testing.assert_array_equal(twin.flat, ae.flat)                    # same seed, same bits
    assert set(ae.params) == {"enc.W0", "enc.b0", "enc.W1", "enc.b1", "enc.W2", "enc.b2",
                              "dec.W0", "dec.b0", "dec.W1", "dec.b1", "dec.W2", "dec.b2"}
    assert ae.params["enc.W2"].shape == (4, 3) and ae.params["dec.W0"].shape == (3, 4)
    assert ae.params["dec.W2"].shape == (5, 6)
    ae.flat[:] = 0.5                                                     # params are views
    assert np.all(ae.params["dec.b2"] == 0.5)
    assert tv.Autoencoder(6, seed=4).flat.tobytes() != tv.Autoencoder(6, seed=3).flat.tobytes()


@given(n=st.integers(1, 6), d=st.integers(1, 7), c=st.integers(1, 5),
       hidden=st.lists(st.integers(1, 6), max_size=2), activation=st.sampled_from(ACTIVATIONS),
       loss=st.sampled_from(["mse", "bce"]), seed=st.integers(0, 1000))
def test_shapes(n, d, c, hidden, activation, loss, seed):
    rng = np.random.default_rng(seed)
    ae = tv.Autoencoder(d, hidden_dims=hidden, code_dim=c, activation=activation, loss=loss,
                        sparse_l1=0.1, contractive=0.0 if hidden else 0.1, seed=seed)
    x = rng.uniform(0, 1, (n, d))
    h = ae.encode(x)
    assert h.shape == (n, c) and h.dtype == np.float32
    r = ae.decode(h)
    assert r.shape == (n, d) and r.dtype == np.float32
    if loss == "bce":
        assert np.all((r >= 0) & (r <= 1))
    loss_value, grads = ae.loss_and_grads(x, x + 0.1)
    assert isinstance(loss_value, float) and np.isfinite(loss_value) and loss_value >= 0
    assert set(grads) == set(ae.params)
    for k, g in grads.items():
        assert g.shape == ae.params[k].shape and np.all(np.isfinite(g))
    assert ae.jacobian(x).shape == (n, c, d)
    assert ae.encode(x[0]).shape == (1, c)                             # one example as a vector


# --------------------------------------------------------------------------------------------
# bad arguments: a TinyVAEError that says what to do

@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="l2"), "unknown loss 'l2'.*'mse'.*'bce'"),
    (dict(loss="bernoulli"), r"unknown loss 'bernoulli' \(the VAE's name for bce\)"),
    (dict(activation="gelu"), "unknown activation 'gelu'.*relu"),
    (dict(hidden_dims=(8,), contractive=0.1), "single-layer encoder.*hidden_dims=\\(\\).*contractive=0"),
    (dict(sparse_l1=-1.0), "sparse_l1 must be a finite, non-negative"),
    (dict(contractive=float("nan")), "contractive must be a finite"),
    (dict(noise_std="lots"), "noise_std must be a number"),
    (dict(mask_prob=1.0), "mask_prob.*below 1"),
    (dict(mask_prob=-0.1), "mask_prob must be a finite, non-negative"),
    (dict(code_dim=0), "code_dim must be a positive integer"),
    (dict(input_dim=2.5), "input_dim must be a positive integer"),
    (dict(hidden_dims=(4, 0)), "each hidden width must be a positive integer"),
    (dict(hidden_dims=3), "hidden_dims must be a sequence"),
    (dict(dtype="float16"), "dtype must be float32 or float64"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(tv.TinyVAEError, match=match):
        tv.Autoencoder(**{"input_dim": 4, **kwargs})


def test_bad_inputs():
    ae = tv.Autoencoder(4, hidden_dims=(), code_dim=2, loss="bce")
    with pytest.raises(tv.TinyVAEError, match="shape \\(N, 4\\)"):
        ae.encode(np.zeros((3, 5)))
    with pytest.raises(tv.TinyVAEError, match="h must have shape \\(N, 2\\)"):
        ae.decode(np.zeros((3, 3)))
    with pytest.raises(tv.TinyVAEError, match="data in \\[0, 1\\].*loss='mse'"):
        ae.loss_and_grads(np.full((2, 4), 2.0))
    with pytest.raises(tv.TinyVAEError, match="data in \\[0, 1\\]"):
        tv.fit(ae, np.full((2, 4), 255.0), epochs=1, progress=False)
    with pytest.raises(tv.TinyVAEError, match="x_input must have the shape of x"):
        ae.loss_and_grads(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(tv.TinyVAEError, match="NaN"):
        ae.loss_and_grads(np.zeros((2, 4)), np.full((2, 4), np.nan))
    # bce only constrains the target: a corrupted input may leave [0, 1]
    assert np.isfinite(ae.loss_and_grads(np.zeros((2, 4)), np.full((2, 4), -3.0))[0])


def test_loss_terms_checks_x_input_against_x():
    """More x_input rows than x used to read past the end of x under numba (BCE) or raise
    NumPy's broadcast error (MSE)."""
    x = np.random.default_rng(0).random((5, 16))
    for loss in ("bce", "mse"):
        ae = tv.Autoencoder(16, hidden_dims=(8,), code_dim=2, loss=loss)
        for target, x_input in ((x, x[:2]), (x[:2], np.tile(x, (3, 1)))):
            with pytest.raises(tv.TinyVAEError, match="x_input must have the shape of x"):
                ae.loss_terms(target, x_input)


def test_empty_inputs_and_bad_batch_sizes():
    """An empty x used to give ZeroDivisionError (loss_and_grads) or a loss of 0.0 (evaluate)."""
    ae = tv.Autoencoder(16, hidden_dims=(8,), code_dim=2)
    for call in (lambda: ae.loss_and_grads(np.zeros((0, 16))), lambda: ae.evaluate(np.zeros((0, 16)))):
        with pytest.raises(tv.TinyVAEError, match="no rows"):
            call()
    with pytest.raises(tv.TinyVAEError, match="batch_size"):
        ae.evaluate(np.zeros((3, 16)), batch_size=0)


def test_corrupt_takes_a_generator_or_an_integer_seed():
    x = np.full((4, 10), 0.5)
    ae = tv.Autoencoder(10, code_dim=2, noise_std=0.3, dtype="float64")
    np.testing.assert_array_equal(ae.corrupt(x, 7), ae.corrupt(x, np.random.default_rng(7)))
    assert not np.array_equal(ae.corrupt(x, 7), x)
    for bad in (None, -1, 1.5):
        with pytest.raises(tv.TinyVAEError, match="rng must be"):
            ae.corrupt(x, bad)


def test_settings_are_read_from_the_config_and_cannot_drift_from_it():
    """ae.noise_std = 0.3 had turned denoising on for training while config, and so save, load,
    repr and copies, kept 0.0; vae.latent_dim = 3 failed later inside the MLP."""
    ae = tv.Autoencoder(6, hidden_dims=(), code_dim=2, sparse_l1=0.1, noise_std=0.2)
    vae = tv.VAE(6, hidden_dims=(4,), latent_dim=2)
    for model, settings in ((ae, ("input_dim", "code_dim", "activation", "loss", "sparse_l1", "contractive",
                                  "noise_std", "mask_prob")),
                            (vae, ("input_dim", "latent_dim", "likelihood", "activation", "learn_sigma2"))):
        for name in settings:
            assert getattr(model, name) == model.config[name], name
            before = dict(model.config)
            with pytest.raises(TinyVAEError, match=rf"{name} is fixed when the model is built; build another"):
                setattr(model, name, 0.3)
            assert model.config == before and getattr(model, name) == before[name]
    assert ae.denoising and ae.noise_std == 0.2 and ae.sparse_l1 == 0.1
    vae.beta = 0.5                                  # the one that may change between epochs
    assert vae.config["beta"] == 0.5


def test_the_config_itself_is_read_only_and_reads_as_a_dict():
    """vae.config["latent_dim"] = 3 (or config.update, or a hidden width appended) got round the
    refusal above: the saved config then disagreed with the model's arrays."""
    vae = tv.VAE(6, hidden_dims=(4,), latent_dim=2)
    before = json.dumps(vae.config)
    for change in (lambda c: c.__setitem__("latent_dim", 3), lambda c: c.update(latent_dim=3),
                   lambda c: c.pop("seed"), lambda c: c.setdefault("extra", 1), lambda c: c.clear(),
                   lambda c: c.__delitem__("seed"), lambda c: c.popitem()):
        with pytest.raises(TinyVAEError, match="model.config is read-only"):
            change(vae.config)
    with pytest.raises(TinyVAEError, match="model.config is read-only"):
        vae.config = {}
    with pytest.raises(AttributeError):
        vae.config["hidden_dims"].append(5)        # the widths are a tuple
    assert json.dumps(vae.config) == before
    twin = tv.VAE(**{**vae.config, "latent_dim": 3})       # how to build the model meant
    assert twin.latent_dim == 3 and vae.latent_dim == 2
    for copied in (copy.deepcopy(vae.config), pickle.loads(pickle.dumps(vae.config)), dict(vae.config)):
        assert copied == vae.config
    vae.beta = 0.25                                 # beta still changes, through its own setter
    assert json.loads(json.dumps(vae.config))["beta"] == 0.25


def test_tied_weights_decode_with_the_encoders_transpose_and_save_as_such(tmp_path):
    """tied=True: r = f(x W + b) W^T + c, one weight matrix (Rifai et al. 2011), its gradient the
    sum of both uses (gradient-checked in gradcheck_configs); a loss computed here by hand."""
    x = np.random.default_rng(0).uniform(size=(6, 5))
    ae = tv.Autoencoder(5, hidden_dims=(), code_dim=3, activation="sigmoid", tied=True, contractive=0.2,
                        dtype="float64", seed=1)
    assert list(ae.params) == ["enc.W0", "enc.b0", "dec.b0"] and ae.tied
    W, b = ae.params["enc.W0"], ae.params["enc.b0"]
    ae.params["dec.b0"][...] = [0.1, -0.2, 0.3, 0.0, 0.5]
    c = ae.params["dec.b0"]
    h = 1 / (1 + np.exp(-(x @ W + b)))                                  # (6, 3)
    r = h @ W.T + c                                                     # (6, 5)
    penalty = 0.2 * np.sum((h * (1 - h)) ** 2 @ (W**2).sum(axis=0)[:, None], axis=1)
    loss, grads = ae.loss_and_grads(x)
    assert loss == pytest.approx(np.mean(0.5 * np.sum((r - x) ** 2, axis=1) + penalty), rel=1e-12)
    np.testing.assert_allclose(ae.reconstruct(x), r, rtol=1e-12)
    assert check_model(ae, x).max_error < 1e-8
    W[...] *= 2                                                          # one matrix: the decoder follows
    np.testing.assert_allclose(ae.decode(h), h @ W.T + c, rtol=1e-12)
    back = tv.load(ae.save(tmp_path / "tied.npz"))
    assert back.tied and list(back.params) == list(ae.params)
    np.testing.assert_array_equal(back.reconstruct(x), ae.reconstruct(x))
    for bad, match in ((dict(hidden_dims=(4,)), "tied weights .* need one layer on each side"),
                       (dict(hidden_dims=(), tied="yes"), "tied must be True or False")):
        with pytest.raises(TinyVAEError, match=match):
            tv.Autoencoder(5, code_dim=3, **{"tied": True, **bad})
