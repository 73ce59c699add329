# %% [markdown]
# # Lesson 5: From autoencoder to latent-variable model
#
# Run it: `python lessons/05_latent_variable_model.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 5`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/05_latent_variable_model.py`.
#
# An autoencoder (lessons 1-4) maps x to a code h = f(x) and back to x_hat = g(h). Nothing in it
# lets us *generate* new data, or say how probable an image is. The variational autoencoder
# (Kingma & Welling 2013) keeps the decoder but turns it into a probabilistic model with a
# latent variable z (Goodfellow et al. sec. 20.10.3):
#
#     prior        p(z)   = N(z; 0, I)                  z in R^Z
#     likelihood   p(x|z) = N(x; o(z), sigma2 I)         o(z): the decoder network
#     marginal     p(x)   = ∫ p(x|z) p(z) dz                                           (1)
#
# Generating is easy -- draw z ~ p(z), then x ~ p(x|z) ("ancestral sampling"). Evaluating p(x),
# the number we would like to maximise over the data, is the hard part: eq. (1) is an integral
# over all of R^Z. This lesson shows why, and what a naive Monte Carlo estimate of it costs.

# %%
import inspect

import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae import estimators, recipes
from tinyvae import linear_gaussian as lg
from tinyvae.plots import image_grid
from tinyvae.vae_plots import plot_likelihood_estimates

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train = ds.x_train                                   # (1500, 64) gray values in [0, 1]
n_test = 10 if quick else 50
x = ds.x_test[:n_test]                                 # (n_test, 64): the images we evaluate
epochs = 20 if quick else 60
print(ds, "| evaluating log p(x) on", n_test, "test images")

# %% [markdown]
# ## A decoder we can integrate exactly
#
# Start with the simplest decoder, an affine map o(z) = z W + b (`hidden_dims=()`): this is
# probabilistic PCA (Tipping & Bishop 1999), and because everything is Gaussian the integral (1)
# has a closed form, p(x) = N(x; b, W^T W + sigma2 I) (`tinyvae.linear_gaussian`). That gives
# us the exact answer to check every estimate against. We fit W, b and sigma2 to the digits
# (how is the subject of lessons 6-8; here we only need a decoder that fits the data).

# %%
vae2 = recipes.linear_gaussian_vae(x_train, latent_dim=2, epochs=epochs)
print("decoder W:", vae2.params["dec.W0"].shape, " b:", vae2.params["dec.b0"].shape,
      f" learned sigma2 = {vae2.sigma2:.4f}")

# ancestral sampling: z ~ p(z), then x ~ p(x|z) = N(o(z), sigma2 I)
x_new = vae2.sample(32, seed=1, mean=False)                           # (32, 64)
x_mean = vae2.sample(32, seed=1, mean=True)                           # o(z) for the same z
fig = image_grid(np.vstack([x_mean, np.clip(x_new, 0, 1)]), ds.image_shape, ncols=16,
                 title="Ancestral sampling from the linear-Gaussian model\n"
                       "rows 1-2: the mean o(z), z ~ p(z);  rows 3-4: x ~ N(o(z), sigma2 I)",
                 xlabel="sample", ylabel="row")
tv.lessons.save_figure(fig, "ancestral_samples", "05_latent_variable_model")

# %% [markdown]
# ## Why p(x) is intractable
#
# For the linear decoder the integral is a Gaussian integral. For a neural-network decoder
# o(z) there is no closed form. The brute-force alternative is numerical quadrature: put a grid
# of n points on each latent axis and sum p(x|z_g) p(z_g) dA over the n^Z cells. In two
# dimensions that works (201^2 = 40401 decoder calls per image); the cost grows exponentially.

# %%
exact = lg.log_marginal_likelihood(vae2, x)                           # (n_test,) closed form
grid = estimators.grid_log_likelihood(vae2, x, n=201, limit=6.0)      # (n_test,) quadrature
print("log p(x), exact (first 5):     ", np.round(exact[:5], 4))
print("log p(x), 201^2 grid (first 5):", np.round(grid[:5], 4))
print(f"max |grid - exact| = {np.max(np.abs(grid - exact)):.1e} nats")
assert np.max(np.abs(grid - exact)) < 1e-6
for Z in (2, 10, 20):
    print(f"a 201-point grid in Z = {Z:2d} dimensions: {201.0**Z:.1e} decoder calls per image")

# %% [markdown]
# The same quadrature works for a nonlinear decoder, p(x|z) = N(x; o(z), sigma2 I) with an MLP
# o(z), where no formula exists. We train one (`likelihood="gaussian"`, `learn_sigma2=True`)
# and integrate on the grid: a number, but one we could only get because Z = 2.

# %%
mlp_vae = tv.VAE(64, hidden_dims=(64,), latent_dim=2, likelihood="gaussian", learn_sigma2=True,
                 activation="tanh", seed=0)
tv.fit(mlp_vae, x_train, epochs=epochs, batch_size=64, lr=3e-3, progress=False)
grid_mlp = estimators.grid_log_likelihood(mlp_vae, x, n=201)
iwae_mlp = mlp_vae.log_likelihood(x, k=5000, seed=0)
print(f"MLP decoder, sigma2 = {mlp_vae.sigma2:.4f}: mean log p(x) by the grid {grid_mlp.mean():.3f}, "
      f"by importance sampling from the encoder (below) {iwae_mlp.mean():.3f}")
assert abs(grid_mlp.mean() - iwae_mlp.mean()) < 0.5

# %% [markdown]
# Trust the grid here: it is exact up to the quadrature error, which is negligible at n = 201
# (a finer grid, n = 401, moves the mean by about 1e-8 nats). Where the two disagree -- by about a
# third of a nat in the full run -- the importance-sampling number is the one that is off: its
# log is biased *low* (Jensen's inequality, lesson 8), the more so the worse the encoder's
# q(z|x) matches the true posterior.
#
# ## Naive Monte Carlo
#
# Eq. (1) is an expectation under the prior, p(x) = E_{p(z)}[p(x|z)], so the obvious estimate
# draws k samples from the prior and averages:
#
#     p(x) ~= 1/k sum_i p(x|z_i),     z_i ~ p(z)                                    (2)
#
# It is unbiased for p(x) (its log is biased low, by Jensen's inequality). The library's
# version works in log space, to survive densities like e^-300; its docstring numbers this
# same estimate eq. (1), the numbering of `tinyvae.estimators`, not this lesson's:

# %%
print(inspect.getsource(estimators.naive_log_likelihood))

# %%
ks = [1, 10, 100, 1000, 10000] if quick else [1, 10, 100, 1000, 10000, 100000]
for k in ks:
    naive, ess = estimators.naive_log_likelihood(vae2, x, k=k, seed=k, return_ess=True)
    print(f"Z = 2, k = {k:6d}: mean error {np.mean(naive - exact):+8.3f} nats, "
          f"median effective sample size {np.median(ess):8.1f}")

# %% [markdown]
# ## Its variance
#
# Each term w_i = p(x|z_i) is a random variable, so Var[p_hat] = Var_{p(z)}[p(x|z)] / k. What
# matters is the variance relative to p(x)^2: when p(x|z) is large only in a small region of
# z-space, almost every z_i from the prior misses it and a rare lucky one dominates the sum.
# The *effective sample size* (sum w_i)^2 / sum w_i^2 counts how many samples really
# contribute. Repeat the estimate for one image and look at the spread:

# %%
reps = 20 if quick else 100
models = {Z: (vae2 if Z == 2 else recipes.linear_gaussian_vae(x_train, latent_dim=Z, epochs=epochs))
          for Z in (2, 10, 20)}
x0 = x[:1]                                                            # one image (1, 64)
for Z, model in models.items():
    truth = lg.log_marginal_likelihood(model, x0)[0]
    est = np.array([estimators.naive_log_likelihood(model, x0, k=1000, seed=r)[0] for r in range(reps)])
    rel = np.exp(est - truth)                                         # p_hat / p(x)
    print(f"Z = {Z:2d}: log p(x) = {truth:7.2f};  k = 1000, {reps} repeats: p_hat/p(x) has mean "
          f"{rel.mean():.3g}, std {rel.std():.3g};  log p_hat spread {est.min() - truth:+.2f} .. "
          f"{est.max() - truth:+.2f} nats")

# %% [markdown]
# The estimate is unbiased, E[p_hat / p(x)] = 1, yet in 10 and 20 dimensions the average of
# the repeats falls short of 1, and its standard deviation is larger than its mean: the
# unbiasedness rests on rare, enormous values of p_hat that a few repeats seldom see (a
# heavy-tailed estimator). Most of the time it is far too low -- look at the spread of log p_hat.
#
# In two dimensions the prior covers the posterior well enough; in twenty the region where
# p(x|z) matters is a tiny fraction of the prior's mass, and the estimate stays several nats too low
# even with 10^4 - 10^5 samples (below: about 6 nats at k = 10^4 in the quick run, over 20 at
# k = 10^5 in the full run -- factors of e^6 and e^20 in p(x)). Importance sampling from a
# distribution q(z|x) that concentrates where p(x|z) p(z) is large -- the VAE's encoder, lesson
# 6 -- fixes this: p(x) = E_q[p(x|z) p(z) / q(z|x)] (`VAE.log_likelihood`).

# %%
results = {f"Z = {Z}": (estimators.estimates_versus_k(model, x, ks, seed=Z),
                        lg.log_marginal_likelihood(model, x))
           for Z, model in models.items()}
for label, (r, truth) in results.items():
    print(f"{label:7s} k = {ks[-1]}: naive error {np.mean(r['naive'][-1] - truth):+8.3f}, "
          f"importance-sampling error {np.mean(r['importance'][-1] - truth):+7.4f}, "
          f"naive ESS {np.median(r['naive_ess'][-1]):8.1f} of {ks[-1]}")
fig = plot_likelihood_estimates(results)
tv.lessons.save_figure(fig, "naive_monte_carlo", "05_latent_variable_model")

r2, t2 = results["Z = 2"]
r20, t20 = results["Z = 20"]
assert np.mean(np.abs(r2["naive"][-1] - t2)) < 0.1           # 2-D: naive Monte Carlo works
assert np.mean(r20["naive"][-1] - t20) < -2                  # 20-D: nats too low, even at k = 10^4
assert np.median(r20["naive_ess"][-1]) < 5 < 100 < np.median(r2["naive_ess"][-1])
assert np.mean(np.abs(r20["importance"][-1] - t20)) < 0.5    # sampling from q fixes it

# %% [markdown]
# ## Recap
#
# In this lesson we turned the decoder into a latent-variable model, p(z) = N(0, I) and
# p(x|z) = N(x; o(z), sigma2 I), and sampled from it ancestrally. Its marginal likelihood
# p(x) = ∫ p(x|z) p(z) dz is an integral over R^Z: closed form only for the linear decoder
# (probabilistic PCA), and by quadrature only in one or two dimensions (n^Z decoder calls). The
# naive Monte Carlo estimate 1/k sum p(x|z_i), z_i ~ p(z), is unbiased but its variance explodes
# with Z: in two dimensions its effective sample size is a few percent of k, growing with k,
# but in 10 and 20 it stays near 1 however large k is, and in 20 dimensions the estimate
# misses log p(x) by many nats. Sampling from an encoder q(z|x) instead is the way out -- and
# the ELBO of lesson 6 is what trains that encoder.
