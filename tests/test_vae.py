"""The VAE: gradients against finite differences, the KL, the reparameterization, and the
ELBO identity log p(x) = ELBO + KL(q || p(z|x)) on the linear-Gaussian model."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyvae as tv
from tinyvae import kernels
from tinyvae import linear_gaussian as lg
from tinyvae.checks import run_gradcheck
from tinyvae.errors import TinyVAEError
from tinyvae.gradcheck import check_model
from tinyvae.vae import LIKELIHOODS, gradcheck_configs, gradcheck_problem

TOL = 1e-8          # the checker's own bound is 1e-7; these float64 checks reach 7.6e-10


# ---------------------------------------------------------------------------------------------
# gradients

@pytest.mark.parametrize("name, config", gradcheck_configs(), ids=[n for n, _ in gradcheck_configs()])
def test_gradients_every_configuration(name, config):
    vae, x, eps = gradcheck_problem(config, seed=3)
    report = check_model(vae, x, eps)
    assert report.max_error <= TOL, f"{name}\n{report}"
    assert {r.name for r in report.rows} == set(vae.params)


def test_gradcheck_covers_what_the_issue_asks():
    configs = [c for _, c in gradcheck_configs()]
    assert {c.get("activation", "relu") for c in configs} == set(kernels.ACTIVATIONS)
    assert {len(c["hidden_dims"]) for c in configs} == {0, 1, 2}
    assert {c.get("likelihood", "bernoulli") for c in configs} == set(LIKELIHOODS)
    assert any(c.get("learn_sigma2") for c in configs)
    assert any(c.get("likelihood") == "gaussian" and not c.get("learn_sigma2") for c in configs)
    assert any(c.get("beta", 1.0) != 1.0 for c in configs)


def random_vae_config(case):
    """Shapes, likelihood, activation and beta of gradient-check case ``case``, drawn from a
    seeded generator: the cases are fixed. (Hypothesis would draw them too, but it mixes
    numbers found in the project's source into its examples, so its cases change with any
    edit, and a tiny gradient's finite-difference noise can then cross the tolerance.)"""
    r = np.random.default_rng([2026, case])
    config = dict(input_dim=int(r.integers(1, 6)), latent_dim=int(r.integers(1, 5)),
                  hidden_dims=tuple(int(w) for w in r.integers(1, 6, size=r.integers(0, 3))),
                  likelihood=str(r.choice(LIKELIHOODS)),
                  activation=str(r.choice(["tanh", "softplus", "sigmoid"])), beta=float(r.uniform(0.1, 3.0)))
    config["learn_sigma2"] = config["likelihood"] == "gaussian"
    return config, int(r.integers(0, 1000))


@pytest.mark.parametrize("case", range(25))
def test_gradients_random_shapes(case):
    config, seed = random_vae_config(case)
    vae, x, eps = gradcheck_problem(config, n=3, seed=seed)
    report = check_model(vae, x, eps)
    assert report.max_error <= TOL, f"{config}, seed {seed}\n{report}"


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_the_batch_gradient_is_the_mean_of_the_examples_gradients(likelihood):
    """The loss is a mean over the batch (eq. (2)): its gradient must be the mean of each
    example's gradient with the same eps, to rounding. A sum for a mean, or a float32 1/N in
    this float64 path, keeps the gradient check passing (the loss changes with it) but not this."""
    config = dict(input_dim=5, hidden_dims=(4,), latent_dim=3, likelihood=likelihood, beta=0.7, activation="tanh",
                  learn_sigma2=likelihood == "gaussian")
    vae, x, eps = gradcheck_problem(config, n=7, seed=4)
    loss, _ = vae.loss_and_grads(x, eps)
    batch = vae.grad_flat.copy()
    losses, grads = [], []
    for i in range(7):
        li, _ = vae.loss_and_grads(x[i:i + 1], eps[i:i + 1])
        losses.append(li)
        grads.append(vae.grad_flat.copy())
    assert loss == pytest.approx(np.mean(losses), rel=1e-13)
    np.testing.assert_allclose(batch, np.mean(grads, axis=0), rtol=1e-12, atol=1e-15)


def test_encoder_and_decoder_gradients_do_not_share_buffers():
    """Mirrored shapes (D = 2Z, symmetric hidden widths): a reused buffer would show here."""
    config = dict(input_dim=4, hidden_dims=(3,), latent_dim=2, activation="tanh")
    vae, x, eps = gradcheck_problem(config, seed=7)
    assert vae.params["enc.W1"].shape == (3, 4) and vae.params["dec.W0"].shape == (2, 3)
    report = check_model(vae, x, eps)
    assert report.max_error <= TOL, str(report)


def test_loss_is_mean_of_rec_plus_beta_kl_computed_independently():
    vae, x, eps = gradcheck_problem(dict(input_dim=5, hidden_dims=(4,), latent_dim=3, beta=0.7,
                                         activation="tanh"), seed=1)
    e = np.tanh(x @ vae.params["enc.W0"] + vae.params["enc.b0"]) @ vae.params["enc.W1"] + vae.params["enc.b1"]
    mu, logvar = e[:, :3], e[:, 3:]
    z = mu + np.exp(logvar / 2) * eps
    logits = np.tanh(z @ vae.params["dec.W0"] + vae.params["dec.b0"]) @ vae.params["dec.W1"] + vae.params["dec.b1"]
    p = 1 / (1 + np.exp(-logits))
    rec = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)
    loss, _ = vae.loss_and_grads(x, eps)
    assert loss == pytest.approx(np.mean(rec + 0.7 * kl), rel=1e-12)
    np.testing.assert_allclose(vae.elbo(x, eps), -(rec + kl), rtol=1e-12)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_backends_agree_on_loss_and_grads(likelihood, backend):
    config = dict(input_dim=6, hidden_dims=(5, 4), latent_dim=3, likelihood=likelihood,
                  activation="softplus", learn_sigma2=likelihood == "gaussian")
    results = {}
    for name in ("numpy", "numba"):
        backend(name)
        vae, x, eps = gradcheck_problem(config, n=5, seed=2)
        loss, grads = vae.loss_and_grads(x, eps)
        results[name] = (loss, vae.grad_flat.copy())
    assert results["numba"][0] == pytest.approx(results["numpy"][0], rel=1e-12)
    np.testing.assert_allclose(results["numba"][1], results["numpy"][1], rtol=1e-10, atol=1e-14)


def test_float32_matches_float64():
    config = dict(input_dim=6, hidden_dims=(5,), latent_dim=2)
    vae64, x, eps = gradcheck_problem(config, seed=4)
    vae32 = tv.VAE(**config, dtype="float32")
    vae32.flat[:] = vae64.flat
    l64, _ = vae64.loss_and_grads(x, eps)
    l32, g32 = vae32.loss_and_grads(x, eps)
    assert g32["enc.W0"].dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-6)                      # measured 2.6e-8
    np.testing.assert_allclose(vae32.grad_flat, vae64.grad_flat, rtol=1e-4, atol=1e-6)   # 3.6e-6, 9e-8


def test_gradcheck_command_prints_table_and_exits_zero(capsys):
    assert run_gradcheck("vae") == 0
    out = capsys.readouterr().out
    assert "enc.W0" in out and "log_sigma2" in out and "worst entry" in out
    assert "0 configuration(s) above" in out


def test_every_gradient_check_passes_on_the_numpy_twins(backend, capsys):
    """The tables above run the numba kernels; the same checks on the NumPy twins catch a twin
    whose forward and backward are consistently wrong (the agreement tests compare only the
    kernels someone wrote them for)."""
    backend("numpy")
    assert run_gradcheck("all", verbose=False) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 configuration(s) above" in out and "vae:" in out and "ae:" in out and "layers:" in out


# an independent -log p(x|z) of each likelihood, from the decoder's output o: a likelihood
# added to LIKELIHOODS needs its formula here (a KeyError below says so)
REFERENCE_NLL = {
    "bernoulli": lambda o, x, sigma2: -np.sum(x * np.log(1 / (1 + np.exp(-o)))
                                              + (1 - x) * np.log(1 - 1 / (1 + np.exp(-o))), axis=1),
    "gaussian": lambda o, x, sigma2: np.sum((x - o) ** 2 / (2 * sigma2) + 0.5 * np.log(2 * np.pi * sigma2), axis=1),
}
REFERENCE_MEAN = {"bernoulli": lambda o: 1 / (1 + np.exp(-o)), "gaussian": lambda o: o}


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_each_likelihood_matches_its_own_formula(likelihood):
    """Every name in LIKELIHOODS is wired through: its loss, its decoder mean and its samples
    follow its formula (a branch that fell through to another likelihood would fail here)."""
    vae = tv.VAE(5, hidden_dims=(4,), latent_dim=2, likelihood=likelihood, dtype="float64", seed=1,
                 **({"sigma2": 0.3} if likelihood == "gaussian" else {}))
    rng = np.random.default_rng(0)
    x, z = rng.uniform(size=(6, 5)), rng.standard_normal((6, 2))
    o = vae.decoder(z)
    sigma2 = vae.config.get("sigma2", 1.0)
    np.testing.assert_allclose(vae._nll(o, x), REFERENCE_NLL[likelihood](o, x, sigma2), rtol=1e-12)
    np.testing.assert_allclose(vae.decode(z), REFERENCE_MEAN[likelihood](o), rtol=1e-12)
    rows, _ = vae._reconstruction(o, x, 1.0)
    np.testing.assert_allclose(rows, REFERENCE_NLL[likelihood](o, x, sigma2), rtol=1e-12)
    # draws from p(x|z) (mean=False) against the means at the same z (one seed draws z first):
    # x - E[x|z] has mean 0 and spread sqrt(E[p (1 - p)]) (Bernoulli) or sqrt(sigma2) (Gaussian)
    samples, means = vae.sample(20000, seed=0, mean=False), vae.sample(20000, seed=0, mean=True)
    assert samples.shape == (20000, 5)
    within = samples.astype(np.float64) - means
    expected = (np.sqrt(np.mean(means * (1 - means), axis=0)) if likelihood == "bernoulli"
                else np.full(5, np.sqrt(sigma2)))
    np.testing.assert_allclose(within.mean(axis=0), 0, atol=0.03)
    np.testing.assert_allclose(within.std(axis=0), expected, rtol=0.05)


def test_a_likelihood_without_its_branches_is_an_error(monkeypatch):
    """A name added to LIKELIHOODS but not to the methods' branches must not quietly fall
    through to another likelihood's formulas."""
    from tinyvae import vae as vae_module
    monkeypatch.setattr(vae_module, "LIKELIHOODS", vae_module.LIKELIHOODS + ("laplace",))
    vae = tv.VAE(5, hidden_dims=(4,), latent_dim=2, likelihood="laplace", dtype="float64")
    x, eps = np.full((3, 5), 0.5), np.zeros((3, 2))
    for call in (lambda: vae.loss_and_grads(x, eps), lambda: vae.decode(eps), lambda: vae.sample(2),
                 lambda: vae.log_likelihood(x, k=2)):
        with pytest.raises(NotImplementedError, match="'laplace' is listed in LIKELIHOODS"):
            call()


def test_gradcheck_command_fails_on_a_wrong_backward(monkeypatch, capsys):
    right = kernels.reparameterize_backward

    def wrong(dz, mu, logvar, eps, kl_scale, dmu=None, dlogvar=None):
        dmu, dlogvar = right(dz, mu, logvar, eps, kl_scale, dmu, dlogvar)
        dlogvar *= 2.0                       # the log sigma vs log sigma^2 slip: a factor of 2
        return dmu, dlogvar

    monkeypatch.setattr(kernels, "reparameterize_backward", wrong)
    assert run_gradcheck("vae", verbose=False) == 1
    assert "FAIL" in capsys.readouterr().out


def test_gradcheck_command_line(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "tinyvae", "gradcheck", "--model", "vae"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "gaussian sigma2 learned" in r.stdout and "max relative error" in r.stdout


# ---------------------------------------------------------------------------------------------
# the KL and the reparameterization

def gaussian_kl_by_hand(mu, logvar):
    return 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=-1)


def test_kl_closed_form_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = np.array([[0.5, -1.0, 2.0]]), np.array([[0.3, -0.8, 0.0]])
    kl = kernels.reparameterize(mu, logvar, np.zeros_like(mu))[1][0]
    z = mu + np.exp(logvar / 2) * rng.standard_normal((400_000, 3))
    log_q = -0.5 * np.sum(np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar), axis=1)
    log_p = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=1)
    terms = log_q - log_p
    se = terms.std() / np.sqrt(terms.size)
    assert abs(terms.mean() - kl) < 4 * se
    assert kl == pytest.approx(gaussian_kl_by_hand(mu, logvar)[0], rel=1e-14)


@given(mu=st.lists(st.floats(-5, 5), min_size=1, max_size=6),
       logvar=st.lists(st.floats(-5, 5), min_size=6, max_size=6))
def test_kl_nonnegative_and_zero_only_at_the_prior(mu, logvar):
    mu = np.array([mu])
    logvar = np.array([logvar[:mu.shape[1]]])
    for name in ("numba", "numpy"):
        old = tv.set_backend(name)
        try:
            kl = kernels.reparameterize(mu, logvar, np.zeros_like(mu))[1][0]
        finally:
            tv.set_backend(old)
        assert kl >= 0
        if np.any(mu != 0) or np.any(logvar != 0):
            assert kl > 0 or np.max(np.abs(mu)) < 1e-7 and np.max(np.abs(logvar)) < 1e-4
        else:
            assert kl == 0


def test_reparameterized_samples_have_mean_mu_and_variance_exp_logvar():
    rng = np.random.default_rng(1)
    n = 200_000
    mu = np.tile([[1.5, -0.5, 0.0]], (n, 1))
    logvar = np.tile([[0.0, np.log(4.0), np.log(0.25)]], (n, 1))
    vae = tv.VAE(input_dim=2, latent_dim=3, dtype="float64")
    z = vae.reparameterize(mu, logvar, rng.standard_normal(mu.shape))
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -0.5, 0.0], atol=4 * np.sqrt(4.0 / n))
    np.testing.assert_allclose(z.var(axis=0), [1.0, 4.0, 0.25], rtol=0.02)


def test_extreme_logits_and_logvar_give_finite_loss_and_gradients():
    vae, x, eps = gradcheck_problem(dict(input_dim=4, hidden_dims=(3,), latent_dim=2), seed=0)
    vae.params["dec.b1"][...] = [1e4, -1e4, 1e4, -1e4]         # logits of +-1e4
    vae.params["enc.b1"][...] = [0.0, 0.0, 30.0, -30.0]         # logvar near +30 and -30
    x = np.array([[1.0, 0.0, 0.0, 1.0]] * 3)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for dtype in ("float64", "float32"):
            v = tv.VAE(input_dim=4, hidden_dims=(3,), latent_dim=2, dtype=dtype)
            v.flat[:] = vae.flat
            loss, grads = v.loss_and_grads(x, eps[:3])
            assert np.isfinite(loss) and loss > 1e4            # two confidently wrong pixels
            assert all(np.all(np.isfinite(g)) for g in grads.values())


# ---------------------------------------------------------------------------------------------
# the linear-Gaussian model: every term exact

def linear_gaussian_vae(D=5, Z=2, sigma2=0.4, seed=0):
    rng = np.random.default_rng(seed)
    vae = tv.VAE(input_dim=D, hidden_dims=(), latent_dim=Z, likelihood="gaussian", sigma2=sigma2,
                 dtype="float64", seed=seed)
    vae.flat[:] = rng.normal(scale=0.5, size=vae.flat.size)
    x = rng.normal(size=(7, D)) + vae.params["dec.b0"]
    return vae, x


def log_px_by_hand(vae, x):
    """log N(x; b, W^T W + sigma2 I) straight from the density formula."""
    W, b = vae.params["dec.W0"], vae.params["dec.b0"]
    C = W.T @ W + vae.sigma2 * np.eye(W.shape[1])
    r = x - b
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (x.shape[1] * np.log(2 * np.pi) + logdet + np.einsum("nd,de,ne->n", r, np.linalg.inv(C), r))


def test_exact_log_px_matches_the_density_formula():
    vae, x = linear_gaussian_vae()
    np.testing.assert_allclose(lg.log_marginal_likelihood(vae, x), log_px_by_hand(vae, x), rtol=1e-12)


def test_posterior_matches_bayes_rule_on_a_grid():
    """p(z|x) = p(x|z) p(z) / p(x) at a few z, against the closed-form N(m, S)."""
    vae, x = linear_gaussian_vae(Z=2)
    m, S = lg.posterior(vae, x[:1])
    W, b, s2 = vae.params["dec.W0"], vae.params["dec.b0"], vae.sigma2
    for z in np.random.default_rng(0).normal(size=(5, 2)):
        log_joint = (-0.5 * np.sum((x[0] - z @ W - b) ** 2) / s2 - 0.5 * x.shape[1] * np.log(2 * np.pi * s2)
                     - 0.5 * z @ z - np.log(2 * np.pi))
        d = z - m[0]
        log_post = -0.5 * d @ np.linalg.inv(S) @ d - 0.5 * np.linalg.slogdet(2 * np.pi * S)[1]
        assert log_joint - log_px_by_hand(vae, x[:1])[0] == pytest.approx(log_post, abs=1e-10)


def test_elbo_identity_holds_exactly():
    """log p(x) = ELBO + KL(q(z|x) || p(z|x)) to 1e-11 (measured 4e-14), computed in expectation."""
    for seed in range(5):
        vae, x = linear_gaussian_vae(D=6, Z=3, seed=seed)
        log_px = log_px_by_hand(vae, x)
        elbo = lg.expected_elbo(vae, x)
        kl = lg.kl_to_posterior(vae, x)
        np.testing.assert_allclose(elbo + kl, log_px, rtol=0, atol=1e-11)
        assert np.all(elbo <= log_px + 1e-12) and np.all(kl >= 0)


@given(seed=st.integers(0, 10_000), sigma2=st.floats(0.05, 5.0))
def test_elbo_is_a_lower_bound_for_every_x(seed, sigma2):
    vae, x = linear_gaussian_vae(D=4, Z=2, sigma2=sigma2, seed=seed)
    x = x * np.random.default_rng(seed).uniform(0.1, 10)      # near and far from the data
    assert np.all(lg.expected_elbo(vae, x) <= log_px_by_hand(vae, x) + 1e-10)


def test_one_sample_elbo_averages_to_the_exact_elbo():
    vae, x = linear_gaussian_vae(D=5, Z=2, seed=1)
    rng = np.random.default_rng(0)
    draws = np.array([vae.elbo(x, rng=rng) for _ in range(4000)])      # (4000, N)
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - lg.expected_elbo(vae, x)) < 4 * se)


def test_optimal_diagonal_encoder_closes_the_gap_when_the_posterior_is_diagonal():
    vae, x = linear_gaussian_vae(D=4, Z=2, seed=2)
    W = vae.params["dec.W0"]
    q, _ = np.linalg.qr(W.T)                                   # make the rows of W orthogonal
    W[...] = (q * [1.5, 0.7]).T
    lg.fit_encoder_to_posterior(vae, x)
    np.testing.assert_allclose(lg.kl_to_posterior(vae, x), 0, atol=1e-12)
    np.testing.assert_allclose(lg.expected_elbo(vae, x), log_px_by_hand(vae, x), atol=1e-12)


def test_the_closed_form_encoder_maximises_the_elbo_when_the_posterior_is_correlated():
    """With W's rows not orthogonal, p(z|x) is correlated and the best diagonal q has variances
    1 / P_jj, not the marginal S_jj (which moment matching would give): no small change of any
    encoder parameter may raise the exact ELBO, and the marginal variances give a lower one."""
    vae, x = linear_gaussian_vae(D=4, Z=2, seed=2)
    W = vae.params["dec.W0"]
    W[1] = 0.95 * W[0] + 0.3 * W[1]                            # correlated latent directions
    lg.fit_encoder_to_posterior(vae, x)
    _, S = lg.posterior(vae, x[:1])
    assert abs(S[0, 1]) > 0.1 * np.sqrt(S[0, 0] * S[1, 1])     # the posterior is correlated
    best = lg.expected_elbo(vae, x).sum()
    for name in ("enc.W0", "enc.b0"):
        p = vae.params[name]
        for index in np.ndindex(p.shape):
            for step in (1e-4, -1e-4):
                p[index] += step
                assert lg.expected_elbo(vae, x).sum() <= best + 1e-9, (name, index, step)
                p[index] -= step
    vae.params["enc.b0"][2:] = np.log(np.diag(S))              # the marginal variances instead
    assert lg.expected_elbo(vae, x).sum() < best - 1e-5


def test_iwae_estimate_approaches_the_exact_log_likelihood():
    """A poor q (random encoder): the gap starts at the KL and shrinks as k grows."""
    vae, x = linear_gaussian_vae(D=5, Z=2, seed=3)
    exact = log_px_by_hand(vae, x)
    gaps = {k: float(np.mean(exact - vae.log_likelihood(x, k=k, seed=0))) for k in (1, 10, 100, 5000)}
    kl_gap = float(np.mean(lg.kl_to_posterior(vae, x)))
    assert gaps[1] == pytest.approx(kl_gap, rel=0.25)        # k = 1: the ELBO's gap, the KL
    assert gaps[1] > gaps[10] > gaps[100] > gaps[5000] > 0   # a lower bound that tightens
    assert gaps[5000] < 0.25 * kl_gap


def test_iwae_with_a_good_proposal_is_within_a_hundredth_of_a_nat():
    vae, x = linear_gaussian_vae(D=5, Z=2, seed=3)
    lg.fit_encoder_to_posterior(vae, x)                      # the best diagonal q
    exact = log_px_by_hand(vae, x)
    for k in (100, 5000):
        assert abs(np.mean(exact - vae.log_likelihood(x, k=k, seed=0))) < 0.01


def test_iwae_sample_chunks_continue_one_noise_stream():
    """With all N examples in one chunk, max_rows only splits the k samples into chunks of
    max_rows // N, and the (kc, N, Z) draws continue one stream in the same order as a single
    (k, N, Z) draw: the estimate may change only by the rounding of the running log-sum-exp."""
    vae, x = linear_gaussian_vae(D=5, Z=2, seed=4)
    N = x.shape[0]
    whole = vae.log_likelihood(x, k=64, seed=5)                  # one chunk of all 64 samples
    assert np.all(np.isfinite(whole))
    np.testing.assert_array_equal(whole, vae.log_likelihood(x, k=64, seed=5))
    for per_chunk in (1, 3, 5, 63):                          # 64 = 21 * 3 + 1 = 12 * 5 + 4 = 63 + 1
        chunked = vae.log_likelihood(x, k=64, seed=5, max_rows=per_chunk * N)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12, err_msg=f"{per_chunk} per chunk")


def diagonal_posterior_vae(seed=4):
    """A linear-Gaussian VAE whose encoder is the exact posterior: rows of W orthogonal make
    p(z|x) diagonal, so the fitted diagonal q is p(z|x) itself and every importance weight
    p(x|z) p(z) / q(z|x) equals p(x), whatever the noise."""
    vae, x = linear_gaussian_vae(D=5, Z=2, seed=seed)
    W = vae.params["dec.W0"]
    q, _ = np.linalg.qr(W.T)
    W[...] = (q * [1.5, 0.7]).T
    lg.fit_encoder_to_posterior(vae, x)
    np.testing.assert_allclose(lg.kl_to_posterior(vae, x), 0, atol=1e-12)
    return vae, x


def test_iwae_is_exact_for_every_chunking_when_q_is_the_posterior():
    """Every weight is p(x), so log (1/k) sum_i w_i = log p(x) exactly for every k and every
    chunking (N = 7 examples: max_rows 1 and 3 also split the examples, unevenly). A chunk of
    samples dropped or counted twice moves the result by log((k - kc) / k) or more."""
    vae, x = diagonal_posterior_vae()
    exact = log_px_by_hand(vae, x)
    for k in (1, 2, 64):
        for max_rows in (None, 1, 3, 8, 15, 7 * k - 1):
            got = vae.log_likelihood(x, k=k, seed=5, max_rows=max_rows)
            np.testing.assert_allclose(got, exact, rtol=0, atol=1e-12, err_msg=f"k={k} max_rows={max_rows}")


def test_iwae_chunking_the_examples_draws_other_noise_for_the_same_estimator():
    """Chunks of examples draw their own (kc, n, Z) noise, so max_rows=3 (3 examples, 1 sample
    a chunk) legitimately uses other samples than one (k, N, Z) draw; both estimate the same
    L_k. Paired over 60 examples the mean difference has a standard error near 0.001 nats with
    this near-posterior q: far below log(64/63) = 0.016, the cost of losing one sample in 64."""
    vae, _ = linear_gaussian_vae(D=5, Z=2, seed=4)
    x = np.random.default_rng(9).normal(size=(60, 5)) + vae.params["dec.b0"]
    lg.fit_encoder_to_posterior(vae, x)                      # the best diagonal q: not exact
    assert np.mean(lg.kl_to_posterior(vae, x)) > 1e-4
    whole = vae.log_likelihood(x, k=64, seed=5)
    tiny_chunks = vae.log_likelihood(x, k=64, seed=5, max_rows=3)
    assert np.all(np.isfinite(whole)) and np.all(np.isfinite(tiny_chunks))
    assert not np.allclose(whole, tiny_chunks, rtol=0, atol=1e-9)   # the noise did change
    d = whole - tiny_chunks
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert 0 < se < 0.003
    assert abs(d.mean()) < 4 * se


def test_closed_form_needs_the_linear_gaussian_model():
    with pytest.raises(TinyVAEError, match="linear-Gaussian"):
        lg.expected_elbo(tv.VAE(input_dim=3, hidden_dims=(2,), latent_dim=1), np.zeros((1, 3)))


# ---------------------------------------------------------------------------------------------
# shapes, sampling, diagnostics, errors

@given(D=st.integers(1, 9), Z=st.integers(1, 4), hidden=st.lists(st.integers(1, 8), max_size=2),
       N=st.integers(1, 6), likelihood=st.sampled_from(LIKELIHOODS))
def test_shapes(D, Z, hidden, N, likelihood):
    vae = tv.VAE(input_dim=D, hidden_dims=hidden, latent_dim=Z, likelihood=likelihood)
    x = np.random.default_rng(0).uniform(size=(N, D))
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (N, Z) and mu.dtype == np.float32
    mean = vae.decode(mu)
    assert mean.shape == (N, D)
    if likelihood == "bernoulli":
        assert np.all((mean > 0) & (mean < 1))
    assert vae.elbo(x).shape == (N,)
    assert vae.log_likelihood(x, k=3).shape == (N,)
    assert vae.sample(N).shape == (N, D)
    loss, grads = vae.loss_and_grads(x, np.zeros((N, Z)))
    assert np.isfinite(loss) and set(grads) == set(vae.params)
    assert all(grads[k].shape == vae.params[k].shape for k in grads)


def test_sample_is_reproducible_and_binary_draws_are_binary():
    vae = tv.VAE(input_dim=6, latent_dim=2, seed=1)
    np.testing.assert_array_equal(vae.sample(5, seed=3), vae.sample(5, seed=3))
    assert not np.array_equal(vae.sample(5, seed=3), vae.sample(5, seed=4))
    assert set(np.unique(vae.sample(50, seed=0, mean=False))) <= {0.0, 1.0}


def test_same_seed_same_parameters():
    a, b = tv.VAE(input_dim=7, seed=5), tv.VAE(input_dim=7, seed=5)
    np.testing.assert_array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, tv.VAE(input_dim=7, seed=6).flat)


def test_kl_per_dimension_and_active_units():
    vae = tv.VAE(input_dim=5, hidden_dims=(), latent_dim=3, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(size=(200, 5))
    # make latent 1 ignore x and match the prior exactly: mu_1 = 0, logvar_1 = 0
    vae.params["enc.W0"][:, [1, 4]] = 0
    vae.params["enc.b0"][[1, 4]] = 0
    vae.params["enc.W0"][:, 0] *= 10                        # latent 0: strongly informative
    vae.params["enc.W0"][:, 2] *= 1e-3                      # latent 2: barely moves with x
    kl_dims = vae.kl_per_dimension(x)
    assert kl_dims[1] == 0 and kl_dims[0] > 0
    mu, logvar = vae.encode(x)
    assert np.sum(kl_dims) == pytest.approx(np.mean(gaussian_kl_by_hand(mu, logvar)), rel=1e-12)
    activity = vae.latent_activity(x)
    np.testing.assert_allclose(activity, mu.var(axis=0), rtol=1e-12)
    assert activity[1] == 0 and activity[2] < 1e-4 < 0.01 < activity[0]
    assert vae.active_units(x) == 1                         # only latent 0 carries information
    assert vae.active_units(x, threshold=0.0) == 2          # latent 2 does, barely


def test_training_on_digits_lowers_the_loss_and_iwae_beats_the_elbo():
    from sklearn.datasets import load_digits
    x = load_digits().data[:600] / 16.0
    vae = tv.VAE(input_dim=64, hidden_dims=(64,), latent_dim=4, seed=0)
    before = vae.evaluate(x)["loss"]
    history = tv.fit(vae, x, epochs=15, batch_size=64, progress=False)
    assert history["loss"][-1] < 0.8 * history["loss"][0] and vae.evaluate(x)["loss"] < before
    elbo = vae.elbo(x[:100]).mean()
    iwae = vae.log_likelihood(x[:100], k=200).mean()
    assert elbo < iwae < 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(likelihood="poisson"), "unknown likelihood"),
    (dict(likelihood="bce"), "autoencoder's name for it: use likelihood='bernoulli'"),
    (dict(likelihood="mse"), "use likelihood='gaussian'"),
    (dict(learn_sigma2=True), "learn_sigma2"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(hidden_dims=(4, -1)), "hidden width"),
    (dict(beta=-1), "beta"),
    (dict(sigma2=0), "sigma2"),
    (dict(activation="gelu"), "unknown activation"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tv.VAE(input_dim=4, **kwargs)


def test_the_package_loads_its_names_on_first_use():
    assert hasattr(tv, "VAE") and hasattr(tv, "plots") and not hasattr(tv, "a.b") and not hasattr(tv, "nope")
    assert {"VAE", "fit", "kernels"} <= set(dir(tv))


@pytest.mark.parametrize("spelling, dtype", [("f4", np.float32), ("float", np.float64), ("double", np.float64),
                                             (np.float32, np.float32), ("float64", np.float64)])
def test_every_spelling_of_the_two_float_dtypes_is_taken(spelling, dtype):
    """NumPy's names for float32 and float64 ("f4" had been refused by VAE but taken by MLP)."""
    assert tv.VAE(input_dim=4, dtype=spelling).dtype == dtype


def test_a_variance_or_kl_weight_the_dtype_cannot_hold_is_refused_when_built():
    """sigma2 = 1e-36 in float32 had failed at the first minibatch with a message about the data;
    beta = 1e36 had turned the KL's gradient infinite."""
    with pytest.raises(TinyVAEError, match="sigma2=1e-36 is outside what a float32 model can train with"):
        tv.VAE(4, likelihood="gaussian", sigma2=1e-36)
    with pytest.raises(TinyVAEError, match="beta=1e\\+36 is too large for a float32 model"):
        tv.VAE(4, beta=1e36)
    vae = tv.VAE(4, likelihood="gaussian", sigma2=1e-36, dtype="float64")       # float64 holds both
    vae.beta = 1e36
    with pytest.raises(TinyVAEError, match="too large"):
        tv.VAE(4).beta = 1e36


def test_elbo_takes_the_noise_or_a_generator_not_both():
    vae = tv.VAE(input_dim=4, latent_dim=2)
    x, eps = np.full((3, 4), 0.5), np.zeros((3, 2))
    assert np.array_equal(vae.elbo(x, eps=eps), vae.elbo(x, eps))
    with pytest.raises(TinyVAEError, match="not both"):                   # rng had been ignored
        vae.elbo(x, eps=eps, rng=1)


def test_bad_inputs_are_clear_errors():
    vae = tv.VAE(input_dim=4, latent_dim=2)
    with pytest.raises(TinyVAEError, match=r"\[0, 1\]"):
        vae.loss_and_grads(np.full((2, 4), 2.0), np.zeros((2, 2)))
    with pytest.raises(TinyVAEError, match="shape"):
        vae.loss_and_grads(np.zeros((2, 5)), np.zeros((2, 2)))
    with pytest.raises(TinyVAEError, match="one row per example"):
        vae.loss_and_grads(np.zeros((2, 4)), np.zeros((3, 2)))
    with pytest.raises(TinyVAEError, match="NaN"):
        vae.elbo(np.full((1, 4), np.nan))


def test_init_option_is_kept_in_the_config_and_checked(tmp_path):
    vae = tv.VAE(6, hidden_dims=(5,), latent_dim=2, init="uniform", seed=3)
    assert vae.config["init"] == "uniform" and np.any(vae.params["enc.b0"] != 0)
    vae.save(tmp_path / "m.npz")
    back = tv.load(tmp_path / "m.npz")
    assert back.config["init"] == "uniform" and np.array_equal(back.flat, vae.flat)
    with pytest.raises(tv.TinyVAEError, match="unknown init"):
        tv.VAE(6, init="zeros")


def test_reparameterize_checks_its_inputs():
    """Rows that disagree used to read past the end of logvar under numba (silent garbage)."""
    vae = tv.VAE(16, hidden_dims=(8,), latent_dim=2)
    mu, eps = np.zeros((6, 2), np.float32), np.ones((6, 2), np.float32)
    with pytest.raises(TinyVAEError, match="same shape"):
        vae.reparameterize(mu, np.zeros((2, 2), np.float32), eps)
    with pytest.raises(TinyVAEError, match="same shape"):
        vae.reparameterize(mu, mu, np.ones((1, 2), np.float32))
    with pytest.raises(TinyVAEError, match=r"\(N, 2\)"):
        vae.reparameterize(np.zeros((6, 3)), np.zeros((6, 3)), np.ones((6, 3)))
    # one example as a 1-D vector or as lists, like every other public method
    z = vae.reparameterize([0.5, -1.0], np.log([4.0, 0.25]), [1.0, 2.0])
    np.testing.assert_allclose(z, [[0.5 + 2.0 * 1.0, -1.0 + 0.5 * 2.0]], atol=1e-6)
    assert z.dtype == np.float32


def test_empty_inputs_and_bad_batch_sizes_are_clear_errors():
    vae = tv.VAE(16, hidden_dims=(8,), latent_dim=2)
    empty = np.zeros((0, 16))
    for call in (lambda: vae.loss_and_grads(empty, np.zeros((0, 2))), lambda: vae.evaluate(empty),
                 lambda: vae.kl_per_dimension(empty), lambda: vae.elbo(empty),
                 lambda: vae.log_likelihood(empty, k=2)):
        with pytest.raises(TinyVAEError, match="no rows"):
            call()
    x = np.full((5, 16), 0.5)
    for bad in (0, -1, 2.5):
        with pytest.raises(TinyVAEError, match="batch_size"):
            vae.evaluate(x, batch_size=bad)


@pytest.mark.parametrize("seed", [-1, 1.7, "a", None, True])
def test_seeds_must_be_non_negative_integers(seed):
    """seed=1.7 used to become 1 silently, -1 gave NumPy's message, None a TypeError."""
    vae = tv.VAE(16, hidden_dims=(8,), latent_dim=2)
    x = np.full((2, 16), 0.5)
    for call in (lambda: tv.VAE(16, seed=seed), lambda: tv.Autoencoder(16, seed=seed),
                 lambda: vae.sample(2, seed=seed), lambda: vae.log_likelihood(x, k=2, seed=seed)):
        with pytest.raises(TinyVAEError, match="seed must be a non-negative integer"):
            call()


def test_numpy_integer_seeds_and_odd_arguments():
    assert tv.VAE(16, seed=np.int64(3)).config["seed"] == 3
    with pytest.raises(TinyVAEError, match="string"):
        tv.VAE(16, hidden_dims="128")
    with pytest.raises(TinyVAEError, match="dtype"):
        tv.VAE(16, dtype=None)
    with pytest.raises(TinyVAEError, match="unknown activation"):
        tv.VAE(16, activation="foo")


def test_a_model_too_large_to_allocate_is_refused_before_allocating():
    with pytest.raises(TinyVAEError, match="parameters"):
        tv.VAE(10_000_000, hidden_dims=(1_000_000,))


def test_sampled_draws_have_the_decoders_noise():
    """sample(mean=False) draws x ~ p(x|z). With the decoder's weights zeroed, the mean of
    p(x|z) is the bias b for every z, so the draws must have mean b and standard deviation
    sqrt(sigma2) (Gaussian), or mean sigmoid(b) (Bernoulli)."""
    b = np.array([0.3, -1.0, 2.0])
    vae = tv.VAE(input_dim=3, hidden_dims=(), latent_dim=2, likelihood="gaussian", sigma2=0.25,
                 dtype="float64", seed=0)
    vae.params["dec.W0"][...] = 0
    vae.params["dec.b0"][...] = b
    draws = vae.sample(20_000, seed=1, mean=False)                       # (20000, 3)
    np.testing.assert_allclose(draws.mean(axis=0), b, atol=4 * 0.5 / np.sqrt(20_000))
    np.testing.assert_allclose(draws.std(axis=0), 0.5, rtol=0.03)       # sqrt(0.25), not 0.25
    bern = tv.VAE(input_dim=3, hidden_dims=(), latent_dim=2, dtype="float64", seed=0)
    bern.params["dec.W0"][...] = 0
    bern.params["dec.b0"][...] = b
    bits = bern.sample(20_000, seed=1, mean=False)
    np.testing.assert_allclose(bits.mean(axis=0), 1 / (1 + np.exp(-b)), atol=0.015)


def test_elbo_and_evaluate_take_an_integer_seed_as_the_same_generator():
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, seed=3)
    x = np.random.default_rng(1).uniform(size=(6, 5))
    assert np.array_equal(vae.elbo(x, rng=7), vae.elbo(x, rng=np.random.default_rng(7)))
    assert vae.evaluate(x, rng=7) == vae.evaluate(x, rng=np.random.default_rng(7))
    assert vae.evaluate(x, rng=7) != vae.evaluate(x, rng=8)
    for bad in ("7", -1, 1.5):
        with pytest.raises(TinyVAEError, match="rng must be a NumPy Generator"):
            vae.elbo(x, rng=bad)


def test_sample_and_log_likelihood_take_a_generator_as_their_seed():
    """sample(seed=rng) had refused a Generator, which elbo's and evaluate's rng take: a loop
    drawing batches from one stream had to invent a seed per call."""
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, seed=3)
    x = np.random.default_rng(1).uniform(size=(6, 5))
    assert np.array_equal(vae.sample(4, seed=np.random.default_rng(9)), vae.sample(4, seed=9))
    rng = np.random.default_rng(9)
    first, second = vae.sample(4, seed=rng), vae.sample(4, seed=rng)     # the stream advances
    assert np.array_equal(first, vae.sample(4, seed=9)) and not np.array_equal(first, second)
    assert np.array_equal(vae.log_likelihood(x, k=3, seed=np.random.default_rng(2)),
                          vae.log_likelihood(x, k=3, seed=2))
    rng = np.random.default_rng(2)
    vae.log_likelihood(x, k=3, seed=rng)
    assert not np.array_equal(vae.log_likelihood(x, k=3, seed=rng), vae.log_likelihood(x, k=3, seed=2))


def test_evaluate_is_the_exact_kl_plus_a_one_sample_reconstruction_term():
    """evaluate's KL is the closed form (no noise); its rec is -log p(x|z) at one z per example,
    so over many seeds it averages to the Monte Carlo mean of the by-hand Bernoulli NLL."""
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, beta=0.5, dtype="float64", seed=3)
    x = np.random.default_rng(1).uniform(size=(40, 5))
    mu, logvar = vae.encode(x)
    seeds = [vae.evaluate(x, rng=np.random.default_rng(s), batch_size=7) for s in range(200)]
    assert all(r["kl"] == pytest.approx(np.mean(gaussian_kl_by_hand(mu, logvar)), rel=1e-12) for r in seeds)
    assert all(r["loss"] == pytest.approx(r["rec"] + 0.5 * r["kl"], rel=1e-12) for r in seeds)
    # the expectation of the reconstruction term, by hand, with 4000 draws of z per example
    eps = np.random.default_rng(2).standard_normal((4000, *mu.shape))
    logits = vae.decoder((mu + np.exp(logvar / 2) * eps).reshape(-1, 2)).reshape(4000, 40, 5)   # l(z)
    rec_by_hand = np.mean(np.sum(np.logaddexp(0, logits) - x * logits, axis=-1))
    recs = np.array([r["rec"] for r in seeds])
    assert abs(recs.mean() - rec_by_hand) < 4 * recs.std() / np.sqrt(len(recs)) + 1e-3


@pytest.mark.parametrize("k", [1, 3, 50])
def test_the_elbo_from_the_same_draws_is_never_above_the_iwae_estimate(k):
    """log of the mean weight >= mean of the log weights (Jensen), example by example; with
    one draw the two are the same number, and the estimate itself does not change."""
    vae = tv.VAE(input_dim=6, hidden_dims=(5,), latent_dim=2, dtype="float64", seed=2)
    x = np.random.default_rng(0).uniform(size=(30, 6))
    ll, elbo = vae.log_likelihood(x, k=k, seed=4, max_rows=7, return_elbo=True)
    np.testing.assert_array_equal(ll, vae.log_likelihood(x, k=k, seed=4, max_rows=7))
    if k == 1:
        np.testing.assert_allclose(ll, elbo, rtol=0, atol=1e-12)
    else:
        assert np.all(ll >= elbo) and np.mean(ll - elbo) > 1e-3
    # chunks that split only the k samples (all 30 examples at once) keep the draws: the same
    # numbers, up to the order of the sums, as with no chunking at all
    ll_k, elbo_k = vae.log_likelihood(x, k=k, seed=4, max_rows=60, return_elbo=True)
    ll_1, elbo_1 = vae.log_likelihood(x, k=k, seed=4, return_elbo=True)
    np.testing.assert_allclose(ll_k, ll_1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(elbo_k, elbo_1, rtol=0, atol=1e-10)
    # over many draws the mean log-weight estimates the ELBO of eq. (1): sampled KL, closed form
    _, elbo_many = vae.log_likelihood(x, k=4000, seed=5, return_elbo=True)
    np.testing.assert_allclose(elbo_many.mean(), np.mean([vae.elbo(x, rng=np.random.default_rng(s)).mean()
                                                          for s in range(300)]), atol=0.03)


def test_parameters_are_written_into_not_replaced():
    # params["dec.W0"] = W would leave the flat vector (what Adam updates and save writes) behind
    vae = tv.VAE(input_dim=5, hidden_dims=(), latent_dim=2, dtype="float64")
    W = np.arange(10.0).reshape(2, 5)
    with pytest.raises(TinyVAEError, match=r"params\['dec.W0'\]\[\.\.\.\] = W"):
        vae.params["dec.W0"] = W
    for mutate in (lambda p: p.update({"dec.W0": W}), lambda p: p.pop("dec.W0"), lambda p: p.clear()):
        with pytest.raises(TinyVAEError):
            mutate(vae.params)
    vae.params["dec.W0"][...] = W                      # the way to set a parameter
    vae.params["dec.W0"] -= 1.0                        # in place too (Python assigns the same array back)
    vae.params["dec.W0"] += 1.0
    assert np.array_equal(vae.flat[-len(vae.params["dec.b0"]) - 10:-len(vae.params["dec.b0"])], W.ravel())
    assert dict(vae.params).keys() == vae.params.keys()


def test_beta_changed_between_epochs_is_what_save_keeps(tmp_path):
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, beta=2.0)
    vae.beta = 0.5                                       # KL annealing, say in an epoch_callback
    x, eps = np.full((3, 5), 0.5), np.zeros((3, 2))
    loss, _ = vae.loss_and_grads(x, eps)
    terms = vae.evaluate(x)
    assert terms["loss"] == pytest.approx(terms["rec"] + 0.5 * terms["kl"])
    path = vae.save(tmp_path / "m.npz")
    again = tv.load(path)
    assert again.beta == 0.5 and again.loss_and_grads(x, eps)[0] == loss
    with pytest.raises(TinyVAEError, match="beta"):
        vae.beta = -1.0
    with pytest.raises(TinyVAEError, match="learn_sigma2 must be True or False"):
        tv.VAE(5, likelihood="gaussian", learn_sigma2="no")


def test_the_parameter_arrays_are_written_into_never_replaced():
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, seed=1)
    flat = vae.flat
    for name, value in (("flat", flat.copy()), ("params", dict(vae.params)), ("grads", {}), ("grad_flat", flat.copy())):
        with pytest.raises(tv.TinyVAEError, match=f"model.{name} cannot be replaced.*write into them"):
            setattr(vae, name, value)
    vae.flat += 1.0                                  # in place, then the same array back: fine
    assert vae.flat is flat and np.array_equal(vae.params["dec.b1"], flat[-5:]) and np.all(flat[-5:] == 1)


@pytest.fixture(scope="module")
def digits():
    return tv.load_dataset("digits").x_train


def test_copying_params_gives_a_snapshot_that_training_leaves_alone(digits):
    vae = tv.VAE(input_dim=64, hidden_dims=(8,), latent_dim=2, seed=1)
    snapshot = vae.params.copy()
    tv.fit(vae, digits[:128], epochs=1, batch_size=64, progress=False)
    assert set(snapshot) == set(vae.params) and type(snapshot) is dict
    assert not np.array_equal(snapshot["enc.W0"], vae.params["enc.W0"])
    assert not np.shares_memory(snapshot["enc.W0"], vae.flat)


def test_data_out_of_range_gets_its_own_maximum_as_advice(digits):
    raw = digits[:16] * 16                           # scikit-learn's raw digits: 0..16, not 0..255
    vae = tv.VAE(input_dim=64, hidden_dims=(8,), latent_dim=2)
    for call in (lambda: vae.elbo(raw), lambda: tv.fit(vae, raw, epochs=1, progress=False)):
        with pytest.raises(tv.TinyVAEError, match=r"\[0, 16\].*x / x.max\(\) \(here 16;"):
            call()
    with pytest.raises(tv.TinyVAEError, match=r"rescale it, \(x - x.min\(\)\)"):
        vae.elbo(raw - 8)
    with pytest.raises(tv.TinyVAEError, match=r"a rounding error above 1: clip it, np.clip\(x, 0, 1\)"):
        vae.elbo(np.minimum(digits[:16].astype(np.float64) * 1.0000003, 1.0000003))


def test_a_copied_or_pickled_model_has_its_own_parameter_views():
    import copy
    import pickle
    vae = tv.VAE(input_dim=5, hidden_dims=(4,), latent_dim=2, beta=0.5, seed=1)
    for twin in (copy.deepcopy(vae), pickle.loads(pickle.dumps(vae))):
        assert np.array_equal(twin.flat, vae.flat) and twin.beta == 0.5 and twin.flat is not vae.flat
        twin.flat += 1.0                                    # the named arrays follow their own flat ...
        assert np.array_equal(twin.params["dec.W0"], vae.params["dec.W0"] + 1.0)
        assert not np.shares_memory(twin.flat, vae.flat)    # ... and never the original's


def test_the_api_s_small_consistencies():
    """From a review of the API as a notebook meets it: the VAE reconstructs as the autoencoder
    does, the training step takes a seed like every other rng=, load_dataset takes binarize="none"
    as fit does, and tab completion on tv offers no stray module."""
    vae = tv.VAE(64, hidden_dims=(8,), latent_dim=2, seed=0)
    x = tv.load_dataset("digits", binarize="none").x_test[:5]
    np.testing.assert_array_equal(vae.reconstruct(x), vae.decode(vae.encode(x)[0]))
    assert vae.reconstruct(x).shape == (5, 64)
    loss, _, terms = vae.training_loss_and_grads(x, 0)
    assert np.isfinite(loss) and set(terms) == {"rec", "kl"}
    ae = tv.Autoencoder(64, hidden_dims=(), code_dim=2, noise_std=0.1)
    assert np.isfinite(ae.training_loss_and_grads(x, 3)[0])
    names = dir(tv)
    assert "importlib" not in names and not [n for n in names if n.startswith("_") and n != "__version__"]
    for name in ("estimators", "linear_gaussian"):
        assert name in tv.__all__ and getattr(tv, name).__name__ == f"tinyvae.{name}"
