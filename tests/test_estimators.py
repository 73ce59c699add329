"""Monte Carlo estimators (lessons 5-7), the recipes of lessons 6-7 and their plots.

Expected values come from independent sources: scipy's Gaussian densities, the closed forms of
the linear-Gaussian model, expectations of a quadratic worked out by hand, finite differences."""
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import multivariate_normal

import tinyvae as tv
from tinyvae import estimators as est
from tinyvae import linear_gaussian as lg
from tinyvae import recipes
from tinyvae.errors import TinyVAEError
from tinyvae.vae import LIKELIHOODS
from tinyvae.vae_plots import plot_elbo_gap, plot_gradient_variance


def linear_vae(D=8, Z=2, seed=0, sigma2=0.5):
    """A linear-Gaussian VAE with random (untrained) parameters: every identity must hold anyway."""
    return tv.VAE(D, hidden_dims=(), latent_dim=Z, likelihood="gaussian", learn_sigma2=True, sigma2=sigma2,
                  dtype="float64", seed=seed)


def ppca_data(n=300, D=8, Z=2, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(Z, D))
    return rng.standard_normal((n, Z)) @ W + 0.3 * rng.standard_normal((n, D)) + 0.5


# ------------------------------------------------------------------------------------------
# densities and log p(x)

def test_log_densities_against_scipy(rng):
    z, mu, logvar = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
    want = multivariate_normal(mu, np.diag(np.exp(logvar))).logpdf(z)
    assert np.allclose(est.log_normal(z, mu, logvar), want, rtol=1e-12)
    assert np.allclose(est.log_standard_normal(z), multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z))


def test_log_mean_exp_and_effective_sample_size():
    a = np.array([[1000.0, 1000.0], [1000.0 + np.log(3), 1000.0]])     # would overflow exp()
    assert np.allclose(est.log_mean_exp(a, axis=0), [1000 + np.log(2), 1000.0])
    assert est.effective_sample_size(np.zeros(50)) == pytest.approx(50)
    assert est.effective_sample_size(np.array([0.0, -800.0, -900.0])) == pytest.approx(1)


def test_linear_gaussian_log_px_against_scipy_and_the_estimators(rng):
    vae = linear_vae()
    x = ppca_data(n=4)
    W, b, s2 = vae.params["dec.W0"], vae.params["dec.b0"], vae.sigma2
    want = multivariate_normal(b, W.T @ W + s2 * np.eye(8)).logpdf(x)
    assert np.allclose(lg.log_marginal_likelihood(vae, x), want, rtol=1e-10)
    assert np.max(np.abs(est.grid_log_likelihood(vae, x, n=201) - want)) < 1e-6
    naive = est.naive_log_likelihood(vae, x, k=20000, seed=0)
    assert np.max(np.abs(naive - want)) < 0.05


@pytest.mark.parametrize("Z", [1, 2])
def test_grid_estimate_in_one_and_two_latent_dimensions(Z):
    """The grid's cell volume is dz^Z: with one latent dimension too (only Z = 2 was tested)."""
    vae = linear_vae(Z=Z)
    x = ppca_data(n=3, Z=Z)
    assert np.max(np.abs(est.grid_log_likelihood(vae, x, n=201) - lg.log_marginal_likelihood(vae, x))) < 1e-6


def test_log_sum_exp_of_weights_that_are_all_zero_is_minus_infinity():
    with np.errstate(all="raise"):                          # no warning on the way
        np.testing.assert_array_equal(est._log_sum_exp(np.full((3, 2), -np.inf)), [-np.inf, -np.inf])


def test_grid_refuses_three_latent_dimensions():
    with pytest.raises(TinyVAEError, match="latent_dim <= 2"):
        est.grid_log_likelihood(linear_vae(Z=3), ppca_data(n=2, Z=3))


# ------------------------------------------------------------------------------------------
# lesson 6: the ELBO's terms

def test_elbo_terms_average_to_the_exact_elbo_and_kl():
    vae = linear_vae()
    x = ppca_data(n=3)
    eps = np.random.default_rng(0).standard_normal((20000, 3, 2))
    t = est.elbo_terms(vae, x, eps)
    assert set(t) == {"log_px_z", "log_pz", "log_qz"} and t["log_pz"].shape == (20000, 3)
    mean, se = est.mean_and_standard_error(t["log_px_z"] + t["log_pz"] - t["log_qz"])
    assert np.all(np.abs(mean - lg.expected_elbo(vae, x)) < 4 * se)
    mu, logvar = vae.encode(x)
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)                 # K&W app. B
    mean, se = est.mean_and_standard_error(t["log_qz"] - t["log_pz"])
    assert np.all(np.abs(mean - kl) < 4 * se)
    with pytest.raises(TinyVAEError, match="eps must have shape"):
        est.elbo_terms(vae, x, eps[:, :2])


# ------------------------------------------------------------------------------------------
# lesson 7: gradient estimators

def quadratic_expectation(mu, logvar, a, c):
    """E_q[-1/2 sum c (z - a)^2] for z ~ N(mu, exp(logvar)): E(z-a)^2 = (mu - a)^2 + sigma^2."""
    return -0.5 * np.sum(c * ((mu - a) ** 2 + np.exp(logvar)))


def test_quadratic_expected_gradient_by_finite_differences():
    a, c = np.array([2.0, -1.0]), np.array([1.0, 4.0])
    mu, logvar, h = np.array([0.5, 0.1]), np.array([-0.7, -1.6]), 1e-6
    g_mu, g_logvar = est.Quadratic(a, c).expected_gradient(mu, logvar)
    for j in range(2):
        e = np.eye(2)[j] * h
        assert g_mu[j] == pytest.approx((quadratic_expectation(mu + e, logvar, a, c)
                                         - quadratic_expectation(mu - e, logvar, a, c)) / (2 * h), rel=1e-6)
        assert g_logvar[j] == pytest.approx((quadratic_expectation(mu, logvar + e, a, c)
                                             - quadratic_expectation(mu, logvar - e, a, c)) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("method", est.ESTIMATORS)
def test_every_gradient_estimator_is_unbiased(method):
    f = est.Quadratic([2.0, -1.0], [1.0, 4.0])
    mu, logvar = np.array([0.5, 0.0]), np.log([0.5, 0.2])
    exact = np.concatenate(f.expected_gradient(mu, logvar))
    eps = np.random.default_rng(1).standard_normal((100000, 2))
    mean, se = est.mean_and_standard_error(est.per_sample_gradients(f, mu, logvar, eps, method))
    assert np.all(np.abs(mean - exact) < 4 * se)


def test_reparameterization_spread_is_known_and_smaller():
    # g_mu = -c (z - a) = -c (mu - a) - c sigma eps: its standard deviation is c sigma exactly
    f = est.Quadratic([2.0, -1.0], [1.0, 4.0])
    mu, logvar = np.array([0.5, 0.0]), np.log([0.5, 0.2])
    curve = est.gradient_std_curve(f, mu, logvar, ns=[1, 16], repeats=800, seed=3)
    want = np.array([1.0, 4.0]) * np.sqrt([0.5, 0.2])
    std = curve["reparameterization"]["std"]                                  # (2, 2Z)
    assert np.allclose(std[0, :2], want, rtol=0.1)
    assert np.allclose(std[1, :2], want / 4, rtol=0.1)                         # 1/sqrt(16)
    for m in ("score", "score_baseline"):
        assert np.all(curve[m]["std"][:, :2] > 2 * std[:, :2])
    with pytest.raises(TinyVAEError, match="unknown gradient estimator"):
        est.per_sample_gradients(f, mu, logvar, np.zeros((3, 2)), "pathwise")


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_decoder_log_likelihood_gradient_by_finite_differences(rng, likelihood):
    """df/dz by backprop against float64 central differences of f(z) = log p(x|z), for both
    decoders (the Gaussian one with sigma2 != 1, so a missing 1/sigma2 shows too)."""
    vae = tv.VAE(6, hidden_dims=(5,), latent_dim=2, activation="tanh", likelihood=likelihood,
                 sigma2=0.3, dtype="float64", seed=0)
    if likelihood == "bernoulli":
        x = (rng.uniform(size=6) > 0.5).astype(float)
    else:
        x = rng.normal(size=6)
    f = est.DecoderLogLikelihood(vae, x)
    z, h = rng.normal(size=(4, 2)), 1e-6
    numeric = np.stack([(f.value(z + h * e) - f.value(z - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    assert np.allclose(f.grad(z), numeric, rtol=1e-6, atol=1e-8)


def test_gradient_variance_setting_holds_what_the_plot_needs():
    f = est.Quadratic([1.0], [2.0])
    s = est.gradient_variance_setting("q", f, [0.0], [0.0], ns=[1, 4], repeats=20, n_one_sample=50,
                                      exact=[2.0, -1.0])
    assert s["name"] == "q" and list(s["ns"]) == [1, 4] and list(s["exact"]) == [2.0, -1.0]
    assert set(s["curve"]) == set(s["one_sample"]) == set(est.ESTIMATORS)
    assert all(g.shape == (50, 2) for g in s["one_sample"].values())
    assert s["curve"]["score"]["std"].shape == (2, 2)


# ------------------------------------------------------------------------------------------
# recipes of lessons 6 and 7

def test_fresh_encoder_and_copy():
    vae = linear_vae()
    twin = recipes.copy_vae(vae)
    assert np.array_equal(twin.flat, vae.flat)
    twin.flat[0] += 1
    assert twin.flat[0] != vae.flat[0]                                         # a copy, not a view
    fresh = recipes.fresh_encoder(vae, seed=5)
    assert not np.array_equal(fresh.params["enc.W0"], vae.params["enc.W0"])      # a new encoder ...
    for name in vae.params:
        if not name.startswith("enc."):                                          # ... the same decoder
            assert np.array_equal(fresh.params[name], vae.params[name]), name


def test_refit_encoder_closes_the_gap_and_leaves_the_decoder_alone():
    vae = linear_vae()
    x = ppca_data()
    decoder = {k: v.copy() for k, v in vae.params.items() if not k.startswith("enc.")}
    student, h = recipes.refit_encoder(vae, x, steps=200, every=50)
    assert list(h["step"]) == [0, 50, 100, 150, 200]
    assert np.max(np.abs(h["log_px"] - (h["elbo"] + h["kl"]))) < 1e-8         # log p(x) = ELBO + KL
    assert np.all(h["kl"] >= 0) and h["kl"][-1] < 0.2 * h["kl"][0]
    assert np.ptp(h["log_px"]) == 0
    for k, v in decoder.items():
        assert np.array_equal(student.params[k], v) and np.array_equal(vae.params[k], v)
    best = lg.fit_encoder_to_posterior(recipes.copy_vae(vae), x)
    assert lg.kl_to_posterior(best, x).mean() <= h["kl"].min()


def test_elbo_gap_study_and_its_plot():
    vae = linear_vae()
    x = ppca_data(n=50)
    d = recipes.elbo_gap_study(vae, x, x[:6], n_kl_samples=500, refit_steps=40)
    assert np.allclose(d["log_px"], lg.log_marginal_likelihood(vae, x[:6]))
    assert set(d["elbo"]) == {"trained encoder", "fresh encoder"}
    assert all(np.all(e <= d["log_px"]) for e in d["elbo"].values())
    assert d["kl_samples"].shape == (500,) and d["best_kl"] <= d["history"]["kl"].min()
    fig = plot_elbo_gap(d["log_px"], d["elbo"], d["kl_samples"], d["kl_closed"],
                        history=d["history"], best_kl=d["best_kl"])
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert len(plot_elbo_gap(d["log_px"], d["elbo"]["trained encoder"]).axes) == 1


def test_gradient_variance_study_and_its_plot():
    ds = tv.load_dataset("digits")
    vae = recipes.small_vae(ds.x_train[:200], epochs=1)
    assert vae.dtype == np.float64 and vae.likelihood == "bernoulli"
    settings = recipes.gradient_variance_study(vae, ds.x_test[:1], quick=True)
    assert [s["exact"] is None for s in settings] == [False, True]
    fig = plot_gradient_variance(settings)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_log_px_given_z_checks_rows_and_widths():
    """Fewer x rows than z rows used to read past the end of x under numba."""
    vae = linear_vae()
    x, z = ppca_data(n=4), np.zeros((4, 2))
    assert est.log_px_given_z(vae, x, z).shape == (4,)
    with pytest.raises(TinyVAEError, match="one row each"):
        est.log_px_given_z(vae, x[:2], z)
    with pytest.raises(TinyVAEError, match=r"\(N, 2\)"):
        est.log_px_given_z(vae, x, np.zeros((4, 3)))


def test_effective_sample_size_of_unequal_weights_by_hand():
    """(sum w)^2 / sum w^2: for w = (1, 1/2) that is 2.25 / 1.25 = 1.8; for w = (1, 1, 1/2, 1/4)
    it is 2.75^2 / 2.3125. The log weights sit near 700, where exp() alone would overflow."""
    assert est.effective_sample_size(np.log([1.0, 0.5]) + 700) == pytest.approx(1.8, rel=1e-12)
    log_w = np.log([[1.0, 1.0], [1.0, 1.0], [0.5, 1.0], [0.25, 1.0]]) - 700     # two columns
    np.testing.assert_allclose(est.effective_sample_size(log_w, axis=0), [2.75**2 / 2.3125, 4.0], rtol=1e-12)


def test_naive_estimate_and_its_ess_when_the_decoder_ignores_z():
    """With dec.W0 = 0, p(x|z) = N(x; b, sigma2 I) for every z: all k weights are equal, so the
    effective sample size is k and the estimate is exactly that Gaussian's log density."""
    vae = linear_vae(D=5, Z=2, sigma2=0.7)
    vae.params["dec.W0"][...] = 0
    x = ppca_data(n=3, D=5)
    b = vae.params["dec.b0"]
    want = multivariate_normal(b, 0.7 * np.eye(5)).logpdf(x)
    estimate, ess = est.naive_log_likelihood(vae, x, k=50, seed=0, chunk=7, return_ess=True)
    np.testing.assert_allclose(estimate, want, rtol=1e-10)
    np.testing.assert_allclose(ess, 50, rtol=1e-9)
    # a decoder that depends on z: unequal weights, whose ESS (sum w)^2 / sum w^2 is computed
    # here from the same draws z_i ~ N(0, I) (seed 0, in order) and scipy's Gaussian density
    vae = linear_vae(D=5, Z=2)
    estimate, ess = est.naive_log_likelihood(vae, x, k=50, seed=0, chunk=7, return_ess=True)
    z = np.random.default_rng(0).standard_normal((50, 2))
    W, b = vae.params["dec.W0"], vae.params["dec.b0"]
    log_w = np.array([[multivariate_normal(z_i @ W + b, 0.5 * np.eye(5)).logpdf(x_n) for x_n in x] for z_i in z])
    w = np.exp(log_w)                                                      # (50, 3)
    np.testing.assert_allclose(ess, w.sum(axis=0) ** 2 / (w**2).sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(estimate, np.log(w.mean(axis=0)), rtol=1e-10)
    assert np.all(ess < 0.9 * 50)                                          # unequal indeed


def test_log_mean_exp_of_weights_that_are_all_zero_is_minus_infinity():
    a = np.array([[0.0, -np.inf], [1.0, -np.inf]])
    out = est.log_mean_exp(a)
    assert out[0] == pytest.approx(np.log(np.mean(np.exp([0.0, 1.0])))) and out[1] == -np.inf


def test_log_likelihood_skips_zero_weights_in_the_first_chunk():
    # a decoder mean of 1e19 z overflows float32 in the Gaussian NLL for |z| > 1.84: those
    # draws have weight 0 (log-weight -inf); chunk by chunk, the first chunk may hold only such
    vae = tv.VAE(1, hidden_dims=(), latent_dim=1, likelihood="gaussian", dtype="float32")
    vae.params["enc.W0"][...] = 0
    vae.params["enc.b0"][...] = 0                      # q(z|x) = N(0, 1)
    vae.params["dec.W0"][...] = 1e19
    x = np.zeros((1, 1), np.float32)
    seed = 3                                           # its first draw is eps = 2.04: weight 0
    assert abs(np.random.default_rng(seed).standard_normal()) > 1.9
    with np.errstate(over="ignore", invalid="ignore"):
        whole = vae.log_likelihood(x, k=100, seed=seed)
        chunked = vae.log_likelihood(x, k=100, seed=seed, max_rows=1)
    assert np.isfinite(whole[0]) and chunked[0] == pytest.approx(whole[0], rel=1e-12)


def test_the_estimators_decode_in_chunks_of_bounded_memory():
    """elbo_terms, the quadrature grid and log p(x|z)'s gradient decode many samples; they go
    through the decoder a chunk at a time (lesson 6 had peaked at 2.4 GB on the 8x8 digits, and
    S = 5000 samples of 1000 Fashion-MNIST images asked for 29 GiB), with the same results."""
    import tracemalloc
    vae = tv.VAE(784, hidden_dims=(16,), latent_dim=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 784)).astype(np.float32)
    eps = rng.standard_normal((500, 40, 2))                   # 20 000 decoded images of 784 pixels
    z = rng.standard_normal((20000, 2))
    f = est.DecoderLogLikelihood(vae, x[:1])
    calls = {"elbo_terms": lambda: est.elbo_terms(vae, x, eps)["log_px_z"],
             "grid": lambda: est.grid_log_likelihood(vae, x[:1], n=150),
             "value": lambda: f.value(z), "grad": lambda: f.grad(z)}
    for name, call in calls.items():
        tracemalloc.start()
        try:
            result = call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 40e6, f"{name}: {peak / 1e6:.0f} MB"    # unchunked: 125-300 MB
        assert np.all(np.isfinite(result))
    # many chunks give what the samples give one by one (a chunk decoded twice had passed above)
    t = est.elbo_terms(vae, x, eps)["log_px_z"]                     # 500 samples, 34 per chunk
    mu, logvar = (a.astype(np.float64) for a in vae.encode(x))
    for s in (0, 33, 34, 250, 499):
        zs = mu + np.exp(0.5 * logvar) * eps[s]                     # (40, 2)
        np.testing.assert_allclose(t[s], est.log_px_given_z(vae, x, zs), rtol=1e-6)
    picks = [0, 1336, 1337, 10000, 19999]                           # 1337 rows per chunk of z
    one = est.DecoderLogLikelihood(vae, x[:1])
    np.testing.assert_allclose(f.value(z)[picks], [one.value(z[i:i + 1])[0] for i in picks], rtol=1e-6)
    np.testing.assert_allclose(f.grad(z)[picks], np.vstack([one.grad(z[i:i + 1]) for i in picks]), rtol=1e-5)
    grid = est.grid_log_likelihood(vae, x[:2], n=150)               # 22 500 points, 1337 per chunk
    pts = np.linspace(-6, 6, 151)
    centres = (pts[:-1] + pts[1:]) / 2
    zg = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    direct = [est._log_sum_exp(est.log_px_given_z(vae, np.repeat(x[i:i + 1], len(zg), axis=0), zg)
                               + est.log_standard_normal(zg)) + np.log((12 / 150) ** 2) for i in range(2)]
    np.testing.assert_allclose(grid, direct, rtol=1e-9)


def test_the_estimators_check_their_data_as_the_model_does():
    """The lesson modules had cast x to float64 and gone on: 0..255 pixels gave a naive log p(x)
    of +392 under a Bernoulli decoder, k=10.5 was cut to 10, and the closed forms met a 1-D x or
    a wrong width with a scalar, an IndexError or a broadcast error."""
    vae = tv.VAE(64, hidden_dims=(8,), latent_dim=2, seed=0)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64))
    for call in (lambda: est.naive_log_likelihood(vae, pixels, k=5), lambda: est.grid_log_likelihood(vae, pixels, n=5),
                 lambda: est.elbo_terms(vae, pixels, np.zeros((2, 3, 2))),
                 lambda: est.log_px_given_z(vae, pixels, np.zeros((3, 2))),
                 lambda: est.DecoderLogLikelihood(vae, pixels[:1])):
        with pytest.raises(TinyVAEError, match=r"needs data in \[0, 1\], got values in \[0, 255\]"):
            call()
    with pytest.raises(TinyVAEError, match="k must be a positive integer, got 10.5"):
        est.naive_log_likelihood(vae, pixels / 255, k=10.5)
    f = est.DecoderLogLikelihood(vae, pixels[:1] / 255)                  # no samples: one error, not an empty answer
    for call, match in ((lambda: est.elbo_terms(vae, pixels / 255, np.zeros((0, 3, 2))), "eps holds no samples"),
                        (lambda: f.value(np.zeros((0, 2))), "z holds no rows"),
                        (lambda: f.grad(np.zeros((0, 2))), "z holds no rows")):
        with pytest.raises(TinyVAEError, match=match):
            call()
    lin = linear_vae()
    x = np.random.default_rng(1).standard_normal((4, 8))
    for f in (lg.log_marginal_likelihood, lg.expected_elbo, lg.kl_to_posterior):
        np.testing.assert_allclose(f(lin, x[0]), f(lin, x)[:1], rtol=1e-12)      # one image, 1-D
        with pytest.raises(TinyVAEError, match=r"x must have shape \(N, 8\), got \(4, 7\)"):
            f(lin, x[:, :7])


def test_closed_forms_and_objectives_keep_no_live_view_of_what_they_were_given():
    """linear_gaussian.marginal returned a float64 model's dec.b0 itself (a saved mean became the
    trained one, and b -= 3 moved the model); Quadratic kept the caller's a by reference."""
    vae = tv.VAE(3, hidden_dims=(), latent_dim=2, likelihood="gaussian", dtype="float64")
    vae.params["dec.b0"][...] = [0.5, -0.25, 2.0]
    b, C = lg.marginal(vae)
    before = vae.flat.copy()
    b -= 3.0
    C[...] = 0.0
    assert np.array_equal(vae.flat, before)
    vae.params["dec.b0"][...] += 1.0                 # training moves the model, not the result
    assert np.array_equal(b, [-2.5, -3.25, -1.0])
    a = np.array([2.0, -1.0])
    f = est.Quadratic(a, [1.0, 4.0])
    value = f.value(np.zeros((1, 2)))
    a[...] = 0.0
    assert np.array_equal(f.value(np.zeros((1, 2))), value)
