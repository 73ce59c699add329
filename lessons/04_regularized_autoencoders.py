# %% [markdown]
# # Lesson 4: Regularized autoencoders, Omega(h, x)
#
# Run it: `python lessons/04_regularized_autoencoders.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 4`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/04_regularized_autoencoders.py`.
#
# Lesson 3 stopped the autoencoder from copying its input by making the code small. A
# *regularized* autoencoder keeps the code as large as the input, or larger (overcomplete),
# and adds a penalty Omega to the loss instead (Goodfellow et al. sec. 14.2):
#
#     L(x, g(f(x))) + Omega(h, x),        h = f(x)                  (eq. 14.10, sec. 14.2.3)
#
# Omega asks the code for a property besides reconstruction. Three classic choices, all
# options of `tv.Autoencoder`:
#
#     sparse        Omega(h)    = lambda sum_j |h_j|             sparse_l1=lambda   sec. 14.2.1
#     denoising     L(x, g(f(x~))), x~ ~ C(x~ | x)               noise_std=sigma    secs. 14.2.2, 14.5
#     contractive   Omega(h, x) = lambda ||df(x)/dx||_F^2         contractive=lambda eq. 14.18

# %%
import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae import figures_ae, kernels

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train, x_test = ds.x_train, ds.x_test                # (1500, 64), (297, 64) in [0, 1]
print(ds)

# %% [markdown]
# ## Sparse autoencoders (sec. 14.2.1)
#
# Give a single-layer autoencoder 128 code units for 64 pixels, h = relu(x W_e + b_e), and a
# linear decoder. Nothing stops it from copying. The L1 penalty lambda sum_j |h_j| charges for
# every active unit; read as a model it is -log of a Laplace prior
# p(h_j) = lambda/2 exp(-lambda |h_j|) on the code, up to a constant (sec. 14.2.1), so training
# is approximate maximum likelihood of a model whose latent causes are mostly off. First the
# penalty by hand against the library's:

# %%
lam = 0.03
ae = tv.Autoencoder(64, hidden_dims=(), code_dim=128, activation="relu", loss="mse", sparse_l1=lam, seed=0)
x5 = x_test[:5]                                                 # (5, 64)
h = ae.encode(x5)                                               # (5, 128), relu: h >= 0
r = ae.decode(h)                                                # (5, 64)
L = 0.5 * np.sum((x5 - r) ** 2, axis=1)                         # (5,) squared error
omega = lam * np.sum(np.abs(h), axis=1)                         # (5,) the sparsity penalty
rec, penalty = ae.loss_terms(x5)
print("L:", np.round(L, 3), " Omega:", np.round(omega, 3))
assert np.allclose(rec, L, rtol=1e-4) and np.allclose(penalty, omega, rtol=1e-4)

# %% [markdown]
# Now one autoencoder per lambda (`figures_ae.sparse_sweep`), and on the test digits: the
# fraction of code values below 0.01 (for relu almost all of these are exactly 0), the number
# of active units per digit, and the reconstruction error.

# %%
lambdas = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)
sparse = figures_ae.sparse_sweep(x_train, x_test, lambdas, code_dim=128, epochs=15 if quick else 30, seed=0)
print("lambda   near-zero   active units   sum|h|   test error")
for i, lam in enumerate(lambdas):
    print(f"{lam:6g}     {sparse['frac_zero'][i]:.3f}        {sparse['active'][i]:5.1f}     "
          f"{sparse['l1'][i]:6.2f}     {sparse['rec'][i]:.3f}")
dead = np.all(sparse["codes"][0] == 0, axis=0).sum()
print(f"lambda = 0: {dead} of 128 relu units are 0 for every test digit")
fig = figures_ae.plot_sparse_codes(sparse)
tv.lessons.save_figure(fig, "sparse_codes", "04_regularized_autoencoders")

baseline = np.mean(0.5 * np.sum((x_test - x_train.mean(axis=0)) ** 2, axis=1))   # x_hat = the mean digit
print(f"for scale: reconstructing every digit by the mean digit has error {baseline:.3f}")
assert sparse["rec"][0] < 0.05 * baseline           # lambda = 0: 128 units for 64 pixels, nearly a copy
assert np.all(np.diff(sparse["frac_zero"]) > 0)     # more lambda, more zeros ...
assert sparse["frac_zero"][-1] > 0.9 > 0.6 > sparse["frac_zero"][0]
assert sparse["active"][-1] < 10                    # ... fewer than 10 of 128 units per digit
assert np.all(np.diff(sparse["rec"]) > 0)           # ... paid for in reconstruction

# %% [markdown]
# Without the penalty the overcomplete code reconstructs almost perfectly -- it has learned to
# copy, and even then over 40% of its relu code values are 0 (a fifth to over a quarter of the
# units, as counted above, are 0 for every test digit: "dead" relus, which get no gradient
# while they stay 0). With it, each digit is described by a handful of active units. The
# penalty also shrinks the values that stay on, so the error grows with lambda: lambda trades
# sparsity for fidelity.
#
# ## Denoising autoencoders (secs. 14.2.2, 14.5)
#
# A denoising autoencoder (DAE) changes the loss, not the penalty: corrupt x into x~ by a
# corruption process C(x~ | x), here x~ = x + sigma eps with eps ~ N(0, I), and ask the
# network to reconstruct the *clean* x:
#
#     L(x, g(f(x~))),        x~ ~ C(x~ | x)
#
# `ae.corrupt(x, rng)` draws x~, and `loss_and_grads(x, x_input=x~)` scores g(f(x~))
# against x; `fit` draws a fresh x~ for every minibatch when `noise_std > 0`.

# %%
dae = tv.Autoencoder(64, hidden_dims=(32,), code_dim=16, activation="relu", noise_std=0.3, seed=0)
x_tilde = dae.corrupt(x5, np.random.default_rng(0))               # (5, 64) x + 0.3 eps
loss, _ = dae.loss_and_grads(x5, x_input=x_tilde)
by_hand = np.mean(0.5 * np.sum((x5 - dae.reconstruct(x_tilde)) ** 2, axis=1))
print(f"std of x~ - x: {np.std(x_tilde - x5):.3f};  DAE loss {loss:.4f} = by hand {by_hand:.4f}")
assert abs(loss - by_hand) < 1e-4 * by_hand

# %% [markdown]
# What does it learn? Sec. 14.5: to undo the corruption the DAE must learn where the data
# are, so its reconstruction field g(f(x~)) - x~ points from x~ back towards the data
# manifold (fig. 14.4); for small Gaussian noise it estimates sigma^2 times the score
# d log p(x) / dx (Alain & Bengio 2013). In two dimensions we can see it. The data lie near a
# curve, x = (t, 0.6 sin 2t) plus a little noise; we train one autoencoder 2 -> 64 -> 16 -> 64
# -> 2 with noise_std = 0.2 and one without, and at noisy test points x~ compare the field
# with the direction to the nearest point of the curve.

# %%
den = figures_ae.denoising_experiment(noise_stds=(0.2, 0.0), epochs=60, seed=0)
off = den["off"]                                       # points > 0.05 from the curve
print(f"{off.sum()} of {len(off)} noisy test points are far enough from the curve to have a direction")
for noise_std, cos, ratio in zip(den["noise_stds"], den["mean_cosine"], den["median_length_ratio"]):
    print(f"noise_std = {noise_std:3g}: mean cos(field, direction to curve) = {cos:.3f}, "
          f"median |g(f(x~)) - x~| / distance to curve = {ratio:.2f}")
fig = figures_ae.plot_denoising_field(den)
tv.lessons.save_figure(fig, "denoising_field", "04_regularized_autoencoders")

(cos_dae, cos_ae), (len_dae, len_ae) = den["mean_cosine"], den["median_length_ratio"]
assert cos_dae > 0.85 and cos_dae > cos_ae + 0.3        # the DAE's field points at the curve
assert 0.7 < len_dae < 1.4 and len_ae < 0.3             # and reaches it; the plain AE barely moves

# %% [markdown]
# The plain autoencoder, with 16 code units for a 2-D input, has nearly learned the identity:
# its arrows are short and point anywhere. The DAE's arrows point at the curve and are about
# as long as the distance to it: g(f(x~)) is (close to) a projection onto the manifold.
#
# ## Contractive autoencoders (sec. 14.7)
#
# The contractive autoencoder (CAE; Rifai et al. 2011) penalises the encoder's sensitivity to
# its input, the squared Frobenius norm of the Jacobian J = dh/dx (C x D):
#
#     Omega(h, x) = lambda ||df(x)/dx||_F^2 = lambda sum_jd (dh_j/dx_d)^2               (14.18)
#
# so the code changes little when x moves -- except along the directions that reconstruction
# needs, the tangent directions of the data manifold. For the single-layer encoder
# h = tanh(a), a = x W_e + b_e, the Jacobian is J_jd = tanh'(a_j) W_dj with tanh'(a) = 1 - h^2;
# `ae.jacobian(x)` computes it, (N, C, D):

# %%
cae = tv.Autoencoder(64, hidden_dims=(), code_dim=16, activation="tanh", contractive=0.01, seed=0)
h = cae.encode(x5)                                               # (5, 16)
W_e = cae.params["enc.W0"]                                       # (64, 16)
J = (1 - h**2)[:, :, None] * W_e.T[None]                         # (5, 16, 64) J_jd = f'(a_j) W_dj
assert np.allclose(cae.jacobian(x5), J, atol=1e-6)
assert np.allclose(kernels.activation_deriv(h, "tanh"), 1 - h**2)
_, penalty = cae.loss_terms(x5)
assert np.allclose(penalty, 0.01 * np.sum(J**2, axis=(1, 2)), rtol=1e-4)
print("||J||_F^2 per example:", np.round(np.sum(J**2, axis=(1, 2)), 3))

# %% [markdown]
# Train one 64 -> 16 tanh autoencoder per lambda (`figures_ae.contractive_sweep`) and measure,
# on the test digits, the mean ||J||_F^2 and the reconstruction error.

# %%
c_lambdas = (0.0, 0.01, 0.1) if quick else (0.0, 0.003, 0.01, 0.03, 0.1)
con = figures_ae.contractive_sweep(x_train, x_test, c_lambdas, code_dim=16, epochs=25 if quick else 60, seed=0)
print("lambda   ||dh/dx||_F^2   test error   ||d g(f(x))/dx||_F^2   ||W_e||_F   ||W_d||_F")
for i, lam in enumerate(c_lambdas):
    print(f"{lam:6g}      {con['jac_fro2'][i]:6.2f}       {con['rec'][i]:.3f}          "
          f"{con['rec_jac_fro2'][i]:6.2f}           {con['enc_norm'][i]:.2f}       {con['dec_norm'][i]:.2f}")
fig = figures_ae.plot_contractive_jacobian(con)
tv.lessons.save_figure(fig, "contractive_jacobian", "04_regularized_autoencoders")

i = c_lambdas.index(0.01)
assert con["jac_fro2"][i] < 0.6 * con["jac_fro2"][0]     # a much less sensitive code ...
assert con["rec"][i] < 1.05 * con["rec"][0]              # ... at (almost) the same reconstruction
assert con["rec_jac_fro2"][i] < 0.8 * con["rec_jac_fro2"][0]
assert con["dec_norm"][i] > con["dec_norm"][0]           # the decoder grew to compensate

# %% [markdown]
# At lambda = 0.01 the encoder's Jacobian has less than half the squared norm of the plain
# autoencoder's, for the same reconstruction error. Read the last two columns before
# celebrating, though. Sec. 14.7 warns that the penalty can be met cheaply: shrink the encoder
# by a constant and let the decoder multiply it back. Here W_e shrinks and W_d grows -- part
# of the "contraction" is that rescaling (Rifai et al. tie W_d = W_e^T to forbid it). Not all
# of it: the Jacobian of the whole map x -> g(f(x)), which no rescaling of the code can
# change, drops too.
#
# Where does the reconstruction follow the input, and where not? Move x by a unit step along
# each principal direction v_k of the training digits and measure how far g(f(x)) moves,
# ||J_r v_k|| with J_r = d g(f(x))/dx (right panel of the figure).

# %%
first_empty = int(np.argmax(con["variance"] < 1e-3))              # 0-based index of the first such v_k
groups = {"v_1..v_8 (main directions)": slice(0, 8),
          f"v_17..v_{first_empty}": slice(16, first_empty),
          f"v_{first_empty + 1}..v_64 (variance < 1e-3)": slice(first_empty, None)}
print("variance of the training digits along v_1, v_8, v_17:",
      np.array2string(con["variance"][[0, 7, 16]], precision=4), f"; below 1e-3 from v_{first_empty + 1} on")
for name, sl in groups.items():
    print(f"mean gain along {name:29s}", "  ".join(f"lambda={lam:g}: {con['gain'][i, sl].mean():.3f}"
                                                   for i, lam in enumerate(c_lambdas)))
i = c_lambdas.index(0.01)
top, middle, empty = groups.values()
assert con["gain"][i, top].mean() > 0.9 * con["gain"][0, top].mean()         # follows the data ...
assert con["gain"][i, middle].mean() < 0.85 * con["gain"][0, middle].mean()
assert con["gain"][i, empty].mean() < 0.1 * con["gain"][0, empty].mean()     # ... not the rest

# %% [markdown]
# Along the main directions of the data -- roughly the tangent directions of the manifold --
# both models follow the input (gain near 1). Beyond the 16th direction a 16-unit code cannot
# follow much anyway (J_r has rank at most 16), and the CAE follows somewhat less. The striking
# difference is in the last dozen directions, in which the training digits hardly vary at all
# (pixels at the border that are almost always 0). The plain autoencoder never learned to
# ignore them -- as in lesson 3, weights that see only zeros get almost no gradient and keep
# their random start -- so a speck of ink in an empty corner changes the code and with it
# the whole reconstruction. The CAE flattens these directions: it contracts where the data
# do not go and keeps the directions they vary along, which is the point of sec. 14.7.

# %% [markdown]
# ## Recap
#
# In this lesson we regularized autoencoders with a penalty Omega(h, x) instead of a small
# code (Goodfellow et al. eq. 14.10). The sparse penalty lambda sum|h_j| (a Laplace prior on the
# code) turned an overcomplete, copying autoencoder into one that describes each digit with a
# handful of 128 units, trading reconstruction for sparsity as lambda grows. The denoising
# autoencoder, trained to map x~ = x + noise back to x, learned a field g(f(x~)) - x~ that
# points at the data manifold (mean cosine 0.95 with the true direction, against a
# field of near-zero arrows without noise), as in figs. 14.4 and 14.5. The contractive penalty
# lambda ||dh/dx||_F^2 (eq. 14.18) made the code far less sensitive to the input at the same
# reconstruction error -- partly by rescaling encoder and decoder, the loophole sec. 14.7
# warns about, and partly by a real contraction of x -> g(f(x)) in the directions the data do
# not vary along, while it still follows the main ones. Lesson 5 turns the decoder
# into a probabilistic model p(x|z) of the data.
