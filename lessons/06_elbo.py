# %% [markdown]
# # Lesson 6: The evidence lower bound (ELBO)
#
# Run it: `python lessons/06_elbo.py` (add `TINYVAE_QUICK=1` for a quick run), step through it
# cell by cell with `tinyvae lesson 6`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/06_elbo.py`.
#
# Lesson 5 left us with a model we can sample from but whose likelihood
# log p(x) = log ∫ p(x|z) p(z) dz we cannot compute, and a hint: sampling z from a distribution
# q(z|x) that knows where p(x|z) p(z) is large works far better than sampling from the prior. The
# VAE's encoder is that q -- a *stochastic encoder* in the sense of Goodfellow et al. sec. 14.4,
# q(z|x) = N(z; mu(x), diag(exp(logvar(x)))). Variational inference (Goodfellow et al. sec. 19.1,
# Kingma & Welling 2013 sec. 2.2) turns it into an objective we *can* compute. For any q,
#
#     log p(x) = ELBO(x, q) + KL(q(z|x) || p(z|x))                                      (1)
#     ELBO(x, q) = E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)]                     (2)
#
# and because a KL divergence is never negative, ELBO <= log p(x): the *evidence lower bound*.
# Maximising it over q pushes q towards the true posterior p(z|x). Maximising it over the
# decoder raises a lower bound on log p(x); usually log p(x) rises too, but part of the gain
# can be a smaller KL instead: the decoder bends towards models whose posterior the diagonal
# q can match (Turner & Sahani 2011; Cremer et al. 2018). This lesson checks every piece of
# (1) and (2) with numbers, on the one model where every term has a closed form.

# %%
import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae import estimators, recipes
from tinyvae import linear_gaussian as lg
from tinyvae.vae_plots import plot_elbo_gap

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train = ds.x_train                                   # (1500, 64) gray values in [0, 1]
n_test = 10 if quick else 50
x = ds.x_test[:n_test]                                 # (n_test, 64): the images we evaluate
epochs = 20 if quick else 60
S = 2000 if quick else 20000                           # Monte Carlo samples of z per image

# lesson 5's probabilistic PCA as a VAE: affine encoder and decoder, p(x|z) = N(x; zW + b, sigma2 I),
# trained (float64) by maximising the ELBO -- how, lesson 8 shows
vae = recipes.linear_gaussian_vae(x_train, latent_dim=2, epochs=epochs)
mu, logvar = vae.encode(x)                             # q(z|x) = N(mu, diag(exp(logvar))), (n_test, 2) each
print(ds, f"| linear-Gaussian VAE, Z = 2, sigma2 = {vae.sigma2:.4f}, {n_test} test images")

# %% [markdown]
# ## Where the identity comes from
#
# log p(x) does not depend on z, so it equals its own average under any q(z|x). Write
# p(x) = p(x, z) / p(z|x) (Bayes' rule), then multiply and divide by q(z|x) inside the log:
#
#     log p(x) = E_q[log p(x, z) - log p(z|x)]
#              = E_q[log p(x, z) - log q(z|x)]  +  E_q[log q(z|x) - log p(z|x)]
#              =          ELBO(x, q)            +      KL(q(z|x) || p(z|x))
#
# and log p(x, z) = log p(x|z) + log p(z) splits the ELBO into the three expectations of (2).
# Goodfellow et al. write the same as eq. 19.1, and for the VAE as eqs. 20.76-20.78 with the
# entropy H(q) = -E_q[log q(z|x)]; Kingma & Welling as eqs. (1)-(3).
#
# For the linear-Gaussian model all three quantities are exact (`tinyvae.linear_gaussian`):
# log p(x) from p(x) = N(b, W^T W + sigma2 I), the posterior p(z|x) is Gaussian, and each
# expectation in (2) is a Gaussian integral. So (1) can be checked to rounding error.

# %%
log_px = lg.log_marginal_likelihood(vae, x)           # (n_test,) exact log p(x)
elbo = lg.expected_elbo(vae, x)                        # (n_test,) the three expectations of (2), exact
kl_post = lg.kl_to_posterior(vae, x)                   # (n_test,) KL(q(z|x) || p(z|x)), exact
print(" image   log p(x)      ELBO    KL(q||p(z|x))   ELBO + KL - log p(x)")
for i in range(5):
    print(f"{i:6d} {log_px[i]:10.4f} {elbo[i]:10.4f} {kl_post[i]:12.6f} {elbo[i] + kl_post[i] - log_px[i]:+16.1e}")
err = np.max(np.abs(log_px - (elbo + kl_post)))
print(f"max |log p(x) - (ELBO + KL)| over {n_test} images: {err:.1e} nats")
assert err < 1e-8                                      # identity (1), to rounding error
assert np.all(kl_post >= 0) and np.all(elbo <= log_px)  # hence the ELBO is a lower bound

m, S_post = lg.posterior(vae, x[:1])                   # the true posterior of image 0: N(m, S_post)
print("image 0: posterior mean", np.round(m[0], 4), " q's mean", np.round(mu[0], 4))
print("         posterior variances", np.round(np.diag(S_post), 4), " q's variances", np.round(np.exp(logvar[0]), 4),
      f" posterior correlation {S_post[0, 1] / np.sqrt(S_post[0, 0] * S_post[1, 1]):+.3f}")

# %% [markdown]
# The trained encoder is close to the posterior, so its gap is a fraction of a nat. But (1)
# holds for *every* q, good or bad. An encoder fresh from its random initialisation, under the
# same decoder (same p(x), same posterior), has a much lower ELBO, and the KL accounts for the
# difference exactly:

# %%
fresh = recipes.fresh_encoder(vae, seed=1)             # same decoder, random affine encoder
elbo_fresh, kl_fresh = lg.expected_elbo(fresh, x), lg.kl_to_posterior(fresh, x)
print(f"fresh encoder: mean ELBO {elbo_fresh.mean():.3f}, mean KL(q||p(z|x)) {kl_fresh.mean():.3f}, "
      f"mean log p(x) {log_px.mean():.3f} (unchanged)")
print(f"trained encoder: mean ELBO {elbo.mean():.3f}, mean KL(q||p(z|x)) {kl_post.mean():.4f}")
assert np.allclose(lg.log_marginal_likelihood(fresh, x), log_px, rtol=0, atol=1e-10)
assert np.max(np.abs(log_px - (elbo_fresh + kl_fresh))) < 1e-8
assert kl_fresh.mean() > 10 * kl_post.mean()

# %% [markdown]
# ## The slides' formula needs its logs
#
# The course slides write the ELBO as E[p(X|Z)] + E[p(Z)] - E[q(Z|X)]. The logs are missing:
# the correct form is (2),
#
#     ELBO = E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)].
#
# Without the logs the expression is not a bound on anything, and not even in the right units
# (densities rather than nats). Estimate both versions with the same samples z ~ q(z|x):
# `estimators.elbo_terms` returns the three log densities at z = mu + sigma * eps.

# %%
eps = np.random.default_rng(0).standard_normal((S, n_test, 2))      # (S, n_test, Z)
t = estimators.elbo_terms(vae, x, eps)                 # log p(x|z), log p(z), log q(z|x): (S, n_test) each
# the correct ELBO (2): each expectation a sample mean of a log density
elbo_mc, elbo_se = estimators.mean_and_standard_error(t["log_px_z"] + t["log_pz"] - t["log_qz"])
# the slides' version: the same expectations taken of the densities themselves
slides = (np.exp(estimators.log_mean_exp(t["log_px_z"]))           # E_q[p(x|z)], averaged in log space
          + np.exp(t["log_pz"]).mean(axis=0) - np.exp(t["log_qz"]).mean(axis=0))
print(" image   log p(x)  ELBO exact   ELBO by MC (+- s.e.)     p(x)      slides' formula")
for i in range(min(n_test, 8)):
    print(f"{i:6d} {log_px[i]:10.4f} {elbo[i]:10.4f} {elbo_mc[i]:10.4f} +- {elbo_se[i]:.4f} "
          f"{np.exp(log_px[i]):12.4g} {slides[i]:14.4g}")
assert np.all(np.abs(elbo_mc - elbo) < 4 * elbo_se)    # the Monte Carlo ELBO agrees with the exact one
assert np.any(slides < 0)                              # "likelihoods" below zero: no log of them exists
assert np.any(slides > np.exp(log_px))                 # and elsewhere above p(x): no lower bound either

# %% [markdown]
# The log-free formula is dominated by E_q[p(x|z)], a density in 64 dimensions that can be 10^9
# or 10^-7, minus E_q[q(z|x)], a number near 1: for some images it exceeds p(x) more than
# tenfold, for others it is negative. The version with logs agrees with the exact ELBO to
# within its standard error, and lies below log p(x) for every image.
#
# ## The KL to the prior: closed form against Monte Carlo
#
# Regrouping (2) gives the form the VAE trains (Goodfellow et al. eq. 20.77, Kingma & Welling
# eq. 3):
#
#     ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)),   KL(q || p(z)) = E_q[log q(z|x) - log p(z)]
#
# For a diagonal Gaussian q and p(z) = N(0, I) the KL is closed form (Kingma & Welling app. B),
# KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), which is what the library's
# `kernels.reparameterize` returns beside z. A Monte Carlo estimate averages log q - log p(z)
# over S samples; it is unbiased and its standard error falls like 1/sqrt(S). To see that, repeat
# the S-sample estimate for image 0 many times and measure the spread of the repeats.

# %%
kl_closed = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)          # (n_test,)
_, kl_kernel = tv.kernels.reparameterize(mu, logvar, np.zeros_like(mu))        # the library's KL
assert np.allclose(kl_kernel, kl_closed, rtol=1e-12, atol=0)

repeats = 200
mu0, logvar0 = mu[0].astype(np.float64), logvar[0].astype(np.float64)   # image 0's q(z|x)  (2,) each
rng = np.random.default_rng(1)
print(f"image 0: closed-form KL(q || p(z)) = {kl_closed[0]:.5f} nats")
print("     S   mean of repeats   spread of repeats   spread * sqrt(S)   mean standard error")
spread_root_S = []
for s in (10, 100, 1000) if quick else (10, 100, 1000, 10000):
    z = mu0 + np.exp(0.5 * logvar0) * rng.standard_normal((s, repeats, 2))       # z ~ q(z|x)  (s, repeats, 2)
    log_q_minus_log_p = estimators.log_normal(z, mu0, logvar0) - estimators.log_standard_normal(z)   # (s, repeats)
    est, se = estimators.mean_and_standard_error(log_q_minus_log_p)             # (repeats,) S-sample estimates
    spread = est.std(ddof=1)
    spread_root_S.append(spread * np.sqrt(s))
    print(f"{s:6d} {est.mean():17.5f} {spread:19.5f} {spread * np.sqrt(s):18.4f} {se.mean():21.5f}")
    assert abs(est.mean() - kl_closed[0]) < 4 * spread / np.sqrt(repeats)      # unbiased
    assert 0.8 < se.mean() / spread < 1.25             # the standard error predicts the spread
assert max(spread_root_S) / min(spread_root_S) < 1.3   # spread ~ const / sqrt(S)

# %% [markdown]
# ## Closing the gap
#
# By (1), for fixed decoder, ELBO = log p(x) - KL(q(z|x) || p(z|x)): raising the ELBO over q
# can only lower the KL to the true posterior. The gap closes completely only if q can equal
# p(z|x). Here the posterior is Gaussian with a full covariance and q is diagonal, so the best q
# has mean m(x) and variances 1/P_jj (P the posterior precision) and leaves a gap set by the
# posterior's correlation -- tiny for this decoder, whose posterior correlation we printed above
# (`linear_gaussian.fit_encoder_to_posterior` sets it in closed form). Training a fresh encoder
# by stochastic gradient ascent on the ELBO, with the decoder frozen, walks towards it
# (`recipes.refit_encoder`; the same numbers draw the figure).

# %%
best = lg.fit_encoder_to_posterior(recipes.copy_vae(vae), x)     # the best diagonal q, in closed form
kl_best = lg.kl_to_posterior(best, x)
study = recipes.elbo_gap_study(vae, x_train, x, n_kl_samples=S, refit_steps=300 if quick else 1000)
h = study["history"]
print("  step    mean ELBO   mean KL(q||p(z|x))")
for i in np.unique(np.linspace(0, len(h["step"]) - 1, 7).astype(int)):
    print(f"{int(h['step'][i]):6d} {h['elbo'][i]:12.4f} {h['kl'][i]:16.5f}")
print(f"mean log p(x) = {h['log_px'][0]:.4f} throughout; best diagonal q: KL = {kl_best.mean():.2e}, "
      f"trained with the decoder: {kl_post.mean():.4f}")
assert np.max(np.abs(h["log_px"] - (h["elbo"] + h["kl"]))) < 1e-8   # (1) at every step
assert h["kl"][-1] < 0.05 * h["kl"][0]                 # the gap closes ...
assert kl_best.mean() <= h["kl"].min() and kl_best.max() < 1e-3   # ... towards the best diagonal q
assert np.allclose(study["log_px"], log_px) and np.allclose(study["elbo"]["trained encoder"], elbo)

fig = plot_elbo_gap(study["log_px"], study["elbo"], study["kl_samples"], study["kl_closed"],
                    history=h, best_kl=study["best_kl"])
tv.lessons.save_figure(fig, "elbo_gap", "06_elbo")

# %% [markdown]
# ## Recap
#
# In this lesson we derived log p(x) = ELBO + KL(q(z|x) || p(z|x)) for any distribution q(z|x),
# and checked it to rounding error (about 1e-14 nats) on the linear-Gaussian VAE, where
# log p(x), the ELBO and the KL to the true posterior are all exact. The KL is never negative,
# so the ELBO
# E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)] is a lower bound on log p(x); the slides'
# version without the logs is not a bound at all (it can exceed p(x), or be negative). The ELBO
# regroups into E_q[log p(x|z)] - KL(q(z|x) || p(z)), where the KL to the prior has a closed
# form that a Monte Carlo average matches, with a standard error falling like 1/sqrt(S). And
# for a fixed decoder, raising the ELBO over q is the same as pulling q towards the true
# posterior: the gap shrank from 17-19 nats to a few hundredths as we fitted an encoder. What is
# left is to differentiate an expectation over q with respect to q's own parameters -- the
# reparameterization trick of lesson 7.
