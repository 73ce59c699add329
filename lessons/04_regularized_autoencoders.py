# %% [markdown]
# # Lesson 4: Regularized autoencoders, Omega(h, x)
#
# Run it: `python lessons/04_regularized_autoencoders.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 4`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/04_regularized_autoencoders.py`.
#
# Lesson 3 stopped the autoencoder from copying its input by making the code small. A
# *regularized* autoencoder adds a penalty Omega to the loss instead (Goodfellow et al.
# sec. 14.2), and that *allows* a code as large as the input, or larger (overcomplete),
# without the network learning to copy:
#
#     L(x, g(f(x))) + Omega(h, x),        h = f(x)                  (eq. 14.10, sec. 14.2.3)
#
# Omega asks the code for a property besides reconstruction. Three classic choices, all
# options of `tv.Autoencoder`:
#
#     sparse        Omega(h)    = lambda sum_j |h_j|             sparse_l1=lambda   sec. 14.2.1
#     denoising     L(x, g(f(x~))), x~ ~ C(x~ | x)               noise_std=sigma    secs. 14.2.2, 14.5
#     contractive   Omega(h, x) = lambda ||df(x)/dx||_F^2         contractive=lambda eq. 14.18
#
# Allowed is not required. The sparse autoencoder below is overcomplete (128 code units for 64
# pixels), and so is the denoising one on a 2-D curve (16 units for 2 inputs). But the DAE on
# the digits (64 -> 32 -> 16) and the contractive autoencoder (64 -> 16) are undercomplete as
# well: what we measure on the CAE mixes the bottleneck of lesson 3 with the penalty.

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
# linear decoder. Nothing stops it from copying. The L1 penalty lambda sum_j |h_j| charges
# each unit in proportion to its value |h_j| (counting the active units would be an L0
# penalty), so it pushes small values to 0 and shrinks the large ones too; read as a model it
# is -log of a Laplace prior
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
# d log p(x) / dx (Alain & Bengio 2014). In two dimensions we can see it. The data lie near a
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
# its arrows are short, about a tenth of the distance to the curve (the median ratio above),
# and only weakly aimed at it (mean cosine about 0.47, where random directions would give 0):
# the identity it learned is imperfect off the data. The DAE's arrows point at the curve and
# are about as long as the distance to it: g(f(x~)) is (close to) a projection onto the
# manifold.
#
# "Towards the curve" is the picture; sec. 14.5 says more precisely what the field is. The
# reconstruction that minimises E ||g(f(x~)) - x||^2 is the posterior mean E[x | x~], and for
# Gaussian corruption E[x | x~] - x~ = sigma^2 d log p_sigma(x~) / dx~ (Tweedie's formula),
# p_sigma being the data density blurred by the noise: the DAE learns sigma^2 times the score
# of the noisy data (Vincent 2011; Alain & Bengio 2014). Here p_sigma is known: the training
# points, each blurred by N(0, 0.2^2 I). `figures_ae.smoothed_score_field` computes
# sigma^2 d log p_sigma / dx~ = sum_i w_i (x_i - x~) with w_i proportional to
# N(x~; x_i, sigma^2 I); compare the two fields at the noisy test points:

# %%
target = figures_ae.smoothed_score_field(den["x_tilde"], den["x_train"], noise_std=0.2)    # (n, 2)
for noise_std, v in zip(den["noise_stds"], den["field"]):
    cos = np.sum(v * target, axis=1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(target, axis=1))
    length = np.linalg.norm(v, axis=1) / np.linalg.norm(target, axis=1)
    miss = np.linalg.norm(v - target, axis=1) / np.linalg.norm(target, axis=1)
    print(f"noise_std = {noise_std:3g}: mean cos(field, sigma^2 score) = {cos.mean():.3f}, median length "
          f"ratio {np.median(length):.2f}, median |field - sigma^2 score| / |sigma^2 score| = {np.median(miss):.2f}")
    if noise_std:
        dae_cos, dae_length, dae_miss = cos.mean(), np.median(length), np.median(miss)
assert dae_cos > 0.85 and 0.8 < dae_length < 1.25 and dae_miss < 0.35

# %% [markdown]
# At a typical point (the median miss) the DAE's field is that score field to within about a
# fifth of its length; the plain autoencoder's is not. Nothing in training told the DAE about densities: it only
# undid noise. This is why denoising is a way to learn a density's score, the idea behind
# score matching (sec. 18.4) and the DAE as a generative model (sec. 20.11).
#
# ## Contractive autoencoders (sec. 14.7)
#
# The contractive autoencoder (CAE; Rifai et al. 2011) penalises the encoder's sensitivity to
# its input, the squared Frobenius norm of the Jacobian J = dh/dx (C x D):
#
#     Omega(h, x) = lambda ||df(x)/dx||_F^2 = lambda sum_jd (dh_j/dx_d)^2               (14.18)
#
# so the code changes little when x moves. Sec. 14.7's argument is that reconstruction pushes
# back only along the directions it needs, the tangent directions of the data manifold, so
# the encoder should stay sensitive along those and contract in the others. For the
# single-layer encoder
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
# on the test digits, the mean ||J||_F^2 and the reconstruction error, and the mean singular
# values of J (the left panel of the figure).

# %%
c_lambdas = (0.0, 0.01, 0.1) if quick else (0.0, 0.003, 0.01, 0.03, 0.1)
con = figures_ae.contractive_sweep(x_train, x_test, c_lambdas, code_dim=16, epochs=25 if quick else 60, seed=0)
print("lambda   ||dh/dx||_F^2   test error   ||d g(f(x))/dx||_F^2   ||W_e||_F   ||W_d||_F")
for i, lam in enumerate(c_lambdas):
    print(f"{lam:6g}      {con['jac_fro2'][i]:6.2f}       {con['rec'][i]:.3f}          "
          f"{con['rec_jac_fro2'][i]:6.2f}           {con['enc_norm'][i]:.2f}       {con['dec_norm'][i]:.2f}")
print("mean singular values of dh/dx, largest to smallest:")
for i, lam in enumerate(c_lambdas):
    print(f"lambda = {lam:<6g}", np.array2string(con["singular_values"][i], precision=2, max_line_width=200))
fig = figures_ae.plot_contractive_jacobian(con)
tv.lessons.save_figure(fig, "contractive_jacobian", "04_regularized_autoencoders")

i = c_lambdas.index(0.01)
assert con["jac_fro2"][i] < 0.6 * con["jac_fro2"][0]     # a much less sensitive code ...
shrink = con["singular_values"][i] / con["singular_values"][0]
assert np.all(shrink < 1) and shrink[0] < shrink[-1]     # every singular value shrinks, the largest most
assert con["rec"][i] < 1.05 * con["rec"][0]              # ... at (almost) the same reconstruction
assert con["rec_jac_fro2"][i] < 0.8 * con["rec_jac_fro2"][0]
assert con["dec_norm"][i] > con["dec_norm"][0]           # the decoder grew to compensate

# %% [markdown]
# At lambda = 0.01 the encoder's Jacobian has less than half the squared norm of the plain
# autoencoder's, for the same reconstruction error. How? Not by keeping a few large singular
# values and zeroing the rest: every singular value shrinks, the largest ones the most (by
# about 35 to 50%, against about a quarter for the smallest), so the spectrum gets *flatter*.
# Read the last two columns of the first table, too. Sec. 14.7 warns that the penalty can be
# met cheaply: shrink the encoder by a constant and let the decoder multiply it back. Here
# W_e shrinks and W_d grows -- part of the "contraction" is that rescaling (Rifai et al. tie
# W_d = W_e^T to forbid it). Not all of it: the Jacobian of the whole map x -> g(f(x)),
# which no rescaling of the code can change, drops too.
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
# Along the main directions of the data both models follow the input (gain near 1): the CAE's
# code is less sensitive overall, but its larger decoder makes up for it there. Beyond the
# 16th direction a 16-unit code cannot follow much anyway (J_r has rank at most 16): that cut
# is the bottleneck, there at every lambda, not the penalty; the CAE follows these directions
# somewhat less. The big difference is in the last dozen directions, in which the training
# digits hardly vary at all (pixels at the border that are almost always 0). The plain
# autoencoder never learned to ignore them -- as in lesson 3, weights that see only zeros get
# almost no gradient and keep their random start -- so a speck of ink in an empty corner
# changes the code and with it the whole reconstruction. In the CAE the reconstruction error
# gives those weights (almost) no gradient either; the force on the encoder weight W_dj of a
# pixel d that is always 0 is the penalty's alone, 2 lambda f'(a_j)^2 W_dj: weight decay. Any
# weight decay would flatten these directions as well.
#
# So this is not yet the picture of sec. 14.7, in which the Jacobian J(x) at each x keeps a
# few large singular values, along the local tangent directions of the manifold, and the rest
# fall to near 0. What the small undercomplete CAE shows is the penalty's general pull: a less
# sensitive code, partly by rescaling, and weights switched off on inputs the data never use.
# Seeing sec. 14.7's picture needs three changes: an overcomplete code (no bottleneck), tied
# weights W_d = W_e^T (no rescaling: `tv.Autoencoder(..., tied=True)`, whose gradient dL/dW_e
# is the sum of the encoder's and the transposed decoder's, gradient-checked like the rest),
# and the singular vectors of J(x) at each x, compared with the manifold's tangent there
# rather than with global principal directions.
#
# ## The local picture: a tied CAE on a curve (secs. 14.6, 14.7)
#
# Back to the curve x = (t, 0.6 sin 2t) of the denoising section, whose tangent at each point
# we know: (1, 1.2 cos 2t), normalised. Train two tied autoencoders 2 -> 32 sigmoid units -> 2
# (16 in the quick run), one without the penalty and one with lambda = 0.1
# (`figures_ae.local_contraction`). At points x on the curve, the SVD of J(x) = dh/dx (C x 2)
# gives singular values s_1 >= s_2 and right singular vectors v_1, v_2: the input directions
# the code follows most and least. For the whole map, J_r = d g(f(x))/dx = W_e J(x) (2 x 2)
# gives the gain of the reconstruction along the tangent and along the normal.

# %%
local = figures_ae.local_contraction((0.0, 0.1), code_dim=16 if quick else 32,
                                     epochs=100 if quick else 300, seed=0)
print("lambda   median s_2/s_1   mean |cos(v_1, tangent)|   gain along / across   train error")
for i, lam in enumerate(local["lambdas"]):
    s = local["s"][i]                                             # (n_points, 2)
    along, across = local["gain_tangent"][i].mean(), local["gain_normal"][i].mean()
    print(f"{lam:6g}        {np.median(s[:, 1] / s[:, 0]):.2f}                {local['cosine'][i].mean():.2f}"
          f"                {along:.2f} / {across:.2f}          {local['rec'][i]:.4f}")
fig = figures_ae.plot_local_contraction(local)
tv.lessons.save_figure(fig, "local_contraction", "04_regularized_autoencoders")

ratio = [np.median(s[:, 1] / s[:, 0]) for s in local["s"]]
cos_plain, cos_cae = (c.mean() for c in local["cosine"])
assert ratio[0] > 0.85 and ratio[1] < 0.75 * ratio[0]          # contracted across the curve ...
assert cos_cae > 0.85 and cos_cae > cos_plain + 0.3             # ... and v_1 turned to the tangent
assert local["gain_normal"][1].mean() < 0.7 * local["gain_tangent"][1].mean()

# %% [markdown]
# Without the penalty the code follows a step of x about equally in every direction (s_2/s_1
# near 1: round ellipses in the figure), and its most sensitive direction does not follow the
# curve (a mean |cos| about 0.5, below the 2/pi = 0.64 of directions drawn at random: if
# anything it leans across the curve). With it, v_1 lies along the tangent almost everywhere
# (|cos| 0.9 and more) and the code responds to a step across the curve at about 0.6 of its
# response along it (s_2/s_1, flat ellipses along the curve); the reconstruction follows a
# step along the curve and damps a step across it.
# This is the manifold picture of secs. 14.6 and 14.7: the encoder is sensitive along the
# manifold's tangent plane and insensitive orthogonal to it, learned from data alone. (Over 2
# dimensions with a 1-D manifold, "a few large singular values" is one; the paid price is a
# reconstruction error that is small but no longer zero, the last column.)

# %% [markdown]
# ## Recap
#
# In this lesson we regularized autoencoders with a penalty Omega(h, x), which allows a code
# as large as the input or larger (Goodfellow et al. eq. 14.10). The sparse penalty
# lambda sum|h_j| (a Laplace prior on the code) turned an overcomplete, copying autoencoder
# into one that describes each digit with a handful of 128 units, trading reconstruction for
# sparsity as lambda grows. The denoising autoencoder, trained to map x~ = x + noise back to
# x, learned a field g(f(x~)) - x~ that points at the data manifold (mean cosine 0.95 with
# the true direction, against a field of short, weakly aimed arrows without noise), as in
# figs. 14.4 and 14.5. The contractive penalty lambda ||dh/dx||_F^2 (eq. 14.18), on an
# undercomplete 64 -> 16 autoencoder, made the code far less sensitive to the input at the
# same reconstruction error: every singular value of dh/dx shrank, the largest the most,
# partly by rescaling encoder and decoder (the loophole sec. 14.7 warns about). The whole map
# x -> g(f(x)) still follows the main directions of the data and stopped following the
# border pixels the digits never use, where the penalty acts as plain weight decay; the cut
# after the 16th direction is the bottleneck. Sec. 14.7's picture -- at each x the largest
# singular values of dh/dx along the manifold's tangents, the rest small -- appeared with an
# overcomplete CAE with tied weights on a curve: its top singular vector turned to the
# tangent and the response across the curve fell to about 0.6 of that along it. Lesson 5
# turns the decoder into a probabilistic model p(x|z) of the data.
