# %% [markdown]
# # Lesson 8: Training a VAE
#
# Run it: `python lessons/08_training_a_vae.py` (add `TINYVAE_QUICK=1` for a quick run), step
# through it cell by cell with `tinyvae lesson 8`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/08_training_a_vae.py`.
#
# Lessons 5-7 built the pieces: a latent-variable model p(x|z) p(z), an encoder q(z|x) and the
# bound it gives (Goodfellow et al. eqs. 20.76-20.78, Kingma & Welling eq. (3)),
#
#     ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)                        (1)
#
# and the reparameterization z = mu + exp(logvar/2) * eps that gives its gradient. Training a VAE
# is Kingma & Welling's Algorithm 1 (AEVB): take a minibatch, draw one eps per example, compute
# the one-sample estimate of (1) with the KL in closed form (their eq. (7), (10) for Gaussians),
#
#     loss = 1/B sum_n [ -log p(x_n | z_n) + KL(q(z|x_n) || p(z)) ],   z_n = mu_n + sigma_n * eps_n   (2)
#
# over a minibatch of B examples (`tinyvae/vae.py` calls its rows N),
# backpropagate, and step the encoder and decoder together (here with Adam). This lesson trains
# VAEs on the 8x8 digits and looks at what came out: the two terms of the loss, reconstructions
# (a stochastic encoder and decoder, Goodfellow et al. sec. 14.4), new samples, the learned 2-D
# manifold (sec. 14.6), the latent space coloured by class; then what the weight beta on the KL
# does to the latent dimensions (posterior collapse), and how far the ELBO is below log p(x).

# %%
import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae import figures_vae, recipes
from tinyvae.plots import (plot_history, plot_latent_manifold, plot_latent_space,
                           plot_reconstructions, plot_samples)
from tinyvae.vae_plots import plot_iwae_bound, plot_kl_per_dimension_beta

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train, x_test = ds.x_train, ds.x_test                # (1500, 64), (297, 64) gray values in [0, 1]
epochs = 30 if quick else 150
print(ds)

# %% [markdown]
# ## One step of Algorithm 1, by hand
#
# `vae.loss_and_grads(x, eps)` is the loss (2) of a minibatch for a given eps, and its exact
# gradient (lesson 7 checked it). A step of gradient descent theta <- theta - lr * g should
# lower the loss by about lr * |g|^2 (first-order Taylor); the same eps on both sides makes the
# two losses comparable. `tv.fit` does this over and over, with a fresh eps and minibatch each
# step and Adam's per-parameter step sizes instead of a single lr.

# %%
vae = tv.VAE(64, hidden_dims=(128,), latent_dim=8, seed=0, dtype="float64")
rng = np.random.default_rng(0)
xb = x_train[:64]                                                     # (B, D) = (64, 64)
eps = rng.standard_normal((64, vae.latent_dim))                       # (B, Z) = (64, 8)
loss0, grads = vae.loss_and_grads(xb, eps)
g = {k: v.copy() for k, v in grads.items()}                           # the buffers are reused
g2 = sum(float(np.sum(v**2)) for v in g.values())                     # |g|^2
lr = 0.05 / g2                                                        # a step that should gain ~0.05 nats
for k in vae.params:
    vae.params[k] -= lr * g[k]                                        # the live parameter arrays
loss1, _ = vae.loss_and_grads(xb, eps)
print(f"loss {loss0:.4f} -> {loss1:.4f}: decrease {loss0 - loss1:.5f} nats, "
      f"first-order prediction lr |g|^2 = {lr * g2:.5f}")
assert abs((loss0 - loss1) / (lr * g2) - 1) < 0.05

# %% [markdown]
# ## tv.fit
#
# Now the real thing: a 64-128-8-128-64 VAE (ReLU, Bernoulli decoder) trained with Adam on
# minibatches of 64, watching the test set after every epoch (`x_val`). The history keeps the
# loss and its two terms apart: `rec` = -log p(x|z) and `kl` = KL(q(z|x) || p(z)), so that
# loss = rec + kl = -ELBO (beta = 1, a one-sample estimate).
#
# What numbers to expect? Two independent references. The digits are gray values, not bits, so
# the Bernoulli "likelihood" is a cross-entropy, and its smallest possible value -- a decoder
# that outputs x itself -- is the entropy sum_d H(x_d) of the pixels. And a model with no latent
# variable at all, independent pixels with the training set's mean gray value p_d, has
# -log p(x) = -sum_d [x_d log p_d + (1 - x_d) log(1 - p_d)]. The VAE should land between them.

# %%
vae = tv.VAE(64, hidden_dims=(128,), latent_dim=8, seed=0)
start = vae.evaluate(x_test)                                          # the untrained model (the KL is exact)
with recipes.one_blas_thread():                        # small matrices: one BLAS thread is faster
    history = tv.fit(vae, x_train, epochs=epochs, batch_size=64, lr=3e-3, x_val=x_test, progress=False)
for e in sorted({0, len(history["epoch"]) // 4, len(history["epoch"]) // 2, len(history["epoch"]) - 1}):
    print(f"epoch {history['epoch'][e]:3d}: train loss {history['loss'][e]:6.2f} = rec {history['rec'][e]:6.2f}"
          f" + KL {history['kl'][e]:5.2f};  test -ELBO {history['val_loss'][e]:6.2f}")
low = int(np.argmin(history["kl"]))                                  # the epoch with the smallest KL
print(f"KL before training (test set): {start['kl']:.2f} nats;  lowest training KL "
      f"{history['kl'][low]:.2f} at epoch {history['epoch'][low]}, then up to {history['kl'][-1]:.2f}")

p = x_train.mean(axis=0).clip(1e-3, 1 - 1e-3)                         # (D,) pixel means
independent = -np.mean(np.sum(x_test * np.log(p) + (1 - x_test) * np.log(1 - p), axis=1))
xt = x_test.astype(np.float64)
floor = -np.mean(np.sum(xt * np.log(np.where(xt > 0, xt, 1)) + (1 - xt) * np.log(np.where(xt < 1, 1 - xt, 1)),
                        axis=1))                                      # sum_d H(x_d), 0 log 0 = 0
test = vae.evaluate(x_test)                                           # one-sample means on the test set
print(f"test: -ELBO {test['loss']:.2f} = rec {test['rec']:.2f} + KL {test['kl']:.2f} nats;  "
      f"independent pixels {independent:.2f};  floor of rec {floor:.2f}")
assert np.allclose(history["loss"], np.add(history["rec"], history["kl"]), atol=1e-3)   # beta = 1
assert floor < test["rec"] < test["loss"] < independent - 1.5
assert history["val_loss"][-1] < history["val_loss"][0] - 2
assert history["kl"][low] < min(start["kl"], history["kl"][-1])      # the KL falls first, then rises

fig = plot_history(history, title="Training a VAE 64-128-8-128-64 on the digits: -ELBO = reconstruction + KL",
                   val_label="test")
tv.lessons.save_figure(fig, "training_curves", "08_training_a_vae")

# %% [markdown]
# The reconstruction term falls. The KL does not simply rise: a randomly initialised encoder is
# neither the prior nor a useful code -- its q(z|x) are off N(0, I) by the KL printed "before
# training", with codes the untrained decoder cannot read yet. So the KL term first pulls
# q(z|x) towards p(z), and the KL falls (to its lowest in the first epochs, as printed). Then
# it rises: the model moves information about x into z and pays KL nats for it, as long as
# each nat of code buys more than a nat of reconstruction. The KL is the cost of the code.
#
# That total splits over the latent dimensions, since q(z|x) and p(z) are both diagonal:
# KL = sum_j KL(q(z_j|x) || N(0, 1)), each term 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
# (`vae.kl_per_dimension`, the mean over examples):

# %%
mu, logvar = vae.encode(x_test)                                       # (N, Z) each
kl_numpy = np.mean(0.5 * (mu**2 + np.exp(logvar) - 1 - logvar), axis=0)   # (Z,)
kl_dims = vae.kl_per_dimension(x_test)                                # (Z,)
print("KL per dimension (nats):", np.round(kl_dims, 3), f" sum {kl_dims.sum():.3f}")
assert np.allclose(kl_numpy, kl_dims, rtol=1e-5)
assert abs(kl_dims.sum() - test["kl"]) < 1e-3 * test["kl"]           # the closed-form KL needs no eps
print(f"active units (Var_x[mu_j(x)] > 0.01): {vae.active_units(x_test)} of {vae.latent_dim}")

# %% [markdown]
# Some dimensions may carry (almost) nothing: their KL is near 0, q(z_j|x) = N(0, 1) whatever x
# is. The 8x8 digits do not need eight numbers, and an unused dimension costs no KL. We come back
# to such *inactive* dimensions with beta below. The count of active units printed above is
# Burda et al.'s rule, Var_x[mu_j(x)] > 0.01; since KL_j >= Var_x[mu_j(x)] / 2, an active
# dimension carries at least 0.005 nats, and that is all the rule promises. A dimension with a
# few hundredths of a nat counts as active (in the quick run all eight do, three of them with
# 0.02 - 0.03 nats), so read the count beside the KL per dimension.
#
# ## Reconstructions and samples
#
# A reconstruction goes through the encoder and back: x -> mu(x) -> the decoder's mean
# sigmoid(l(mu(x))). A *sample* skips the encoder: z ~ p(z) = N(0, I) straight into the decoder.
# That is the whole point of the KL term -- it keeps the codes of the data where the prior puts
# its mass, so that decoding prior draws gives digit-like images.

# %%
x_hat = vae.decode(mu)                                                # (N, D) reconstructions
own = np.mean(np.abs(x_hat - x_test))
other = np.mean(np.abs(x_hat - np.roll(x_test, 1, axis=0)))           # against another test image
print(f"mean |x - x_hat| per pixel: {own:.3f} for its own input, {other:.3f} for another image")
assert own < 0.6 * other

tv.lessons.save_figure(plot_reconstructions(vae, x_test, ds.image_shape), "reconstructions", "08_training_a_vae")
tv.lessons.save_figure(plot_samples(vae, ds.image_shape, n=64, seed=0), "samples", "08_training_a_vae")

# %% [markdown]
# ## A two-dimensional latent space
#
# With latent_dim = 2 we can look at the latent space itself. Decoding a grid of z through the
# prior's quantiles draws the *learned manifold* (Kingma & Welling fig. 4): a 2-D sheet of
# images, each blending smoothly into its neighbours. Plotting the posterior means mu(x) of the
# test set, coloured by a label the VAE never saw, shows what the two coordinates encode. (The
# full run uses Fashion-MNIST, 28x28 pictures of clothes, when its files are present: Debian's
# dataset-fashion-mnist, or a download by `tinyvae train --data fashion-mnist`. The lesson
# itself never downloads; without the files it uses the digits.)

# %%
if quick:
    ds2, note = ds, ""
else:
    ds2, note = figures_vae.pictures_dataset(download=False)          # Fashion-MNIST, or digits
vae2 = tv.VAE(ds2.input_dim, hidden_dims=(128,) if ds2.name == "digits" else (512,), latent_dim=2, seed=0)
epochs2 = (40 if quick else 200) if ds2.name == "digits" else 15
print(f"training a VAE with a 2-D latent space on {figures_vae.pretty_name(ds2)} for {epochs2} epochs "
      "(up to a minute; a progress bar shows on a terminal)")
with recipes.one_blas_thread():
    tv.fit(vae2, ds2.x_train, epochs=epochs2, batch_size=64 if ds2.name == "digits" else 128,
           lr=3e-3 if ds2.name == "digits" else 1e-3, progress=True)
name = f"VAE {figures_vae.architecture(vae2)} on {figures_vae.pretty_name(ds2)}{note}"
fig = plot_latent_manifold(vae2, ds2.image_shape, n=15 if ds2.image_shape[0] < 20 else 20,
                           title=f"The learned manifold: {name}")
tv.lessons.save_figure(fig, "latent_manifold", "08_training_a_vae")
fig = plot_latent_space(vae2, ds2.x_test, ds2.y_test, class_names=figures_vae.class_names(ds2),
                        title=f"Latent space by class: {name}")
tv.lessons.save_figure(fig, "latent_by_class", "08_training_a_vae")

# do the classes separate? classify each test image by the nearest class mean of mu (2 numbers)
mu2 = vae2.encode(ds2.x_test)[0]                                      # (N, 2)
centres = np.stack([vae2.encode(ds2.x_train[ds2.y_train == c])[0].mean(axis=0) for c in range(10)])
nearest = np.argmin(((mu2[:, None, :] - centres[None]) ** 2).sum(axis=-1), axis=1)
accuracy = np.mean(nearest == ds2.y_test)
print(f"nearest class mean in the 2-D latent space: {accuracy:.1%} correct (chance 10%)")
assert accuracy > 0.45

# the aggregate posterior q(z) = mean over x of q(z|x): its mean and variance against the prior's
mu2, logvar2 = vae2.encode(ds2.x_test)                                # (N, 2) each
m = mu2.mean(axis=0)                                                  # E[z]
v = mu2.var(axis=0) + np.exp(logvar2).mean(axis=0)                    # Var[z] = Var_x[mu] + E_x[sigma^2]
kl_aggregate = 0.5 * np.sum(m**2 + v - 1 - np.log(v))                 # KL(N(m, diag v) || N(0, I))
kl_each = vae2.kl_per_dimension(ds2.x_test).sum()                     # mean over x of KL(q(z|x) || p(z))
print(f"aggregate posterior: mean {np.round(m, 2)}, variance {np.round(v, 2)} (the prior: 0 and 1); "
      f"KL(its moment-matched Gaussian || p(z)) = {kl_aggregate:.3f} nats, a lower bound on "
      f"KL(q(z) || p(z));  mean KL(q(z|x) || p(z)) = {kl_each:.2f} nats")
assert kl_aggregate < 0.1 * kl_each

# %% [markdown]
# The classes cluster although no label was used in training: the cheapest way to describe an
# image in two numbers is mostly to say what kind of image it is. And while each q(z|x) is a
# narrow Gaussian far from the prior, the codes mixed over the data (the *aggregate posterior*
# q(z)) have roughly the prior's mean and variance -- the KL term at work, and part of the
# reason decoding z ~ N(0, I) gives sensible images.
#
# Read the printed KL with care. It is the KL of the Gaussian g with q(z)'s mean and variance,
# and since log p(z) of a Gaussian prior depends on z only through those two moments,
# KL(q(z) || p(z)) - KL(g || p(z)) = H(g) - H(q(z)) >= 0: a lower bound. It sees the two
# moments only, not the clusters of the scatter plot or the gaps between them. The
# exact KL(q(z) || p(z)) needs a Monte Carlo estimate over the mixture of all the q(z|x); it
# is the second term of the split of the average KL (Hoffman & Johnson 2016, "ELBO surgery")
#
#     E_x KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z))
#
# into the information the code carries about x, I(x; z) <= log N for N images, and the
# distance of the aggregate posterior from the prior. The numbers above bound the second term
# from below only; they do not show that it is small.
#
# ## beta and posterior collapse
#
# Weighting the KL, loss = rec + beta KL (the beta-VAE of Higgins et al. 2017), trades the two
# terms. With beta > 1 information in z is dearer, and dimension after dimension stops carrying
# any: q(z_j|x) = N(0, 1) for every x, KL_j = 0, mu_j constant. Such a dimension is *inactive*
# (Burda et al. 2015 count a unit active when Var_x[mu_j(x)] > 0.01), and the loss of all its
# information is *posterior collapse* (Bowman et al. 2016). `recipes.beta_sweep` trains one
# 64-128-8 VAE per beta (same seed, same minibatches) and measures each.

# %%
betas = (0.5, 1, 2, 4, 8) if quick else (0.25, 0.5, 1, 2, 4, 8)
sweep = recipes.beta_sweep(x_train, betas, x_eval=x_test, latent_dim=8, epochs=20 if quick else 60)
print("beta    active units   rec     KL     KL per dimension (sorted)")
for b, au, r, k, kd in zip(sweep["betas"], sweep["active_units"], sweep["rec"], sweep["kl"], sweep["kl_per_dim"]):
    print(f"{b:5g}   {au:6d}       {r:6.2f}  {k:5.2f}   {np.round(np.sort(kd)[::-1], 2)}")
fig = plot_kl_per_dimension_beta(sweep, title="beta-VAE 64-128-8 on the digits: posterior collapse as beta grows")
tv.lessons.save_figure(fig, "kl_per_dimension_beta", "08_training_a_vae")

au = sweep["active_units"]
assert au[0] > au[-1] and np.all(np.diff(au) <= 0)                   # fewer active units as beta grows
# reconstruction up, KL down (up to training noise once everything has collapsed)
assert np.all(np.diff(sweep["rec"]) > -0.1) and sweep["rec"][-1] > sweep["rec"][0] + 3
assert np.all(np.diff(sweep["kl"]) < 0.05) and sweep["kl"][0] > 10 * sweep["kl"][-1]
assert sweep["kl"][-1] < 0.1                                         # beta = 8: (almost) everything collapsed
# with every dimension collapsed, z says nothing about x: the decoder can only learn the pixel
# means, and the VAE becomes the independent-pixel model of the training cell
print(f"beta = {betas[-1]:g}: rec {sweep['rec'][-1]:.2f} nats; independent pixels {independent:.2f}")
assert abs(sweep["rec"][-1] - independent) < 0.5

# %% [markdown]
# ## How far below log p(x) is the ELBO?
#
# The ELBO is a bound; to report the model's log-likelihood we need log p(x) itself. Importance
# sampling with the encoder as proposal (lesson 5) estimates it, and the log of the average
# weight is itself a bound that tightens with k (Burda et al. 2015, the IWAE bound):
#
#     IWAE_k(x) = log 1/k sum_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)                        (3)
#     E[IWAE_1] = ELBO  <=  E[IWAE_k]  <=  E[IWAE_{k+1}]  ->  log p(x)   as k -> infinity
#
# (Jensen's inequality, applied to an average of k weights instead of one; the limit needs the
# weights p(x, z) / q(z|x) to be bounded, Burda et al.'s theorem 1.) `vae.log_likelihood(x, k)`
# computes (3), whose expectation its docstring calls L_k; `figures_vae.iwae_versus_k` runs it
# for several k with the same random numbers, beside the ELBO averaged over 500 draws of eps
# (with fewer, its noise is as large as the gaps it is compared with). The figure's right
# panel measures the gain image by image against the ELBO estimated from the same k
# draws (the mean of their log-weights, which by Jensen is never above IWAE_k): the same
# expectation, without the noise of separate draws, and exactly 0 at k = 1.

# %%
ks = (1, 3, 10, 30, 100, 300) if quick else (1, 3, 10, 30, 100, 300, 1000, 3000)
n_iwae = 100 if quick else len(x_test)
with recipes.one_blas_thread():
    r = figures_vae.iwae_versus_k(vae, x_test[:n_iwae], ks, seed=0)
for k, est in zip(r["ks"], r["iwae"]):
    print(f"k = {k:5d}: -IWAE_k = {-est.mean():7.3f} nats")
print(f"-ELBO     = {-r['elbo'].mean():7.3f} nats")
fig = plot_iwae_bound(r["ks"], r["iwae"], r["elbo"], elbo_k=r["elbo_k"],
                      title=f"The IWAE bound of the 64-128-8 VAE on {n_iwae} test digits")
tv.lessons.save_figure(fig, "iwae_bound", "08_training_a_vae")

def mean_and_se(d):                                                   # paired differences over images
    return d.mean(), d.std(ddof=1) / np.sqrt(len(d))

# -log p_k decreases with k: no step up larger than the Monte Carlo noise, and a clear gain overall
steps = [mean_and_se(r["iwae"][i + 1] - r["iwae"][i]) for i in range(len(ks) - 1)]
assert all(m > -3 * se for m, se in steps), "-IWAE_k should not increase with k"
gain, gain_se = mean_and_se(r["iwae"][-1] - r["elbo"])
print(f"IWAE_{ks[-1]} - ELBO = {gain:.3f} +- {gain_se:.3f} nats")
assert gain > 0.1 and gain > 4 * gain_se
# IWAE_1 is an unbiased estimate of the ELBO
d, d_se = mean_and_se(r["iwae"][0] - r["elbo"])
print(f"IWAE_1 - ELBO = {d:+.3f} +- {d_se:.3f} nats")
assert abs(d) < 3 * d_se + 0.02

# %% [markdown]
# Most of the gain comes from the first ten samples. Beyond that the steps from one k to the
# next are hundredths of a nat, smaller than the Monte Carlo noise of a mean over 100 - 300
# images, so a printed -IWAE_k can tick *up* slightly with k (it does in the quick run); the
# inequalities above hold for the expectations, and the checks allow for that noise.
#
# The gap between the ELBO and log p(x) is KL(q(z|x) || p(z|x)) (lesson 6): how far the
# diagonal Gaussian q is from the true posterior. For this small model it is a fraction of a
# nat per image; for the 784-400-20 VAE on Fashion-MNIST it is about 3 nats or more: in
# `figures/iwae_bound.png`, IWAE_1000 lies 3.0 nats above the ELBO (give or take 0.3, two
# standard errors over the test images), and IWAE_1000 is itself still a lower bound on
# log p(x). Since Burda et al. (2015), VAE papers report -log p(x) estimated this way with a
# large k, not the training loss. Kingma & Welling themselves compared methods by the lower
# bound, and estimated log p(x) only for very low-dimensional latent spaces, with an MCMC
# (HMC-based) estimator (their app. D).
#
# ## Recap
#
# In this lesson we trained VAEs with `tv.fit`, which is Kingma & Welling's Algorithm 1: one
# eps per example, the one-sample ELBO with the KL in closed form, backprop, Adam. We checked
# one gradient step by hand against its first-order prediction, watched the reconstruction term
# fall while the KL, after a first dip from the random encoder towards the prior, rose (the KL
# is the price of the code, and it splits over the latent dimensions), and placed the result
# between the entropy floor of the data and a model with independent pixels. We looked at
# reconstructions, samples from the prior, a 2-D learned manifold and a latent space in which
# the classes cluster without labels, with an aggregate posterior of roughly the prior's mean
# and variance (a moment-matched Gaussian only bounds its KL to the prior from below). Raising
# beta in rec + beta KL switched latent dimensions off one by one -- posterior collapse,
# counted by the active units, which also count dimensions carrying hundredths of a nat --
# trading reconstruction for KL.
# Finally the importance-weighted bound IWAE_k rose from the ELBO (k = 1) towards log p(x) as k
# grew, measuring how loose the bound we trained on is.
