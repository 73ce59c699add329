# %% [markdown]
# # Lesson 3: The undercomplete autoencoder
#
# Run it: `python lessons/03_undercomplete_autoencoder.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 3`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/03_undercomplete_autoencoder.py`.
#
# An autoencoder is a network trained to copy its input to its output through a code h
# (Goodfellow et al. ch. 14). It has two parts,
#
#     encoder   h = f(x)          x in R^D  ->  h in R^C
#     decoder   r = g(h)          h in R^C  ->  r in R^D   (the reconstruction)
#
# and learns by minimising a loss that penalises r for being unlike x (eq. 14.1):
#
#     L(x, g(f(x))),      here  L = 1/2 ||x - g(f(x))||^2   (loss="mse")
#
# Copying is useless in itself. What makes it useful is a constraint that stops the network
# from copying perfectly, so it must keep only the most useful features of x. The simplest is
# a code smaller than the input, C < D: an *undercomplete* autoencoder (sec. 14.1). On the
# 8x8 digits, D = 64 pixels; we squeeze them through C = 8 numbers.

# %%
import numpy as np
from sklearn.decomposition import PCA

import tinyvae as tv
import tinyvae.lessons
from tinyvae import figures_ae

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train, x_test = ds.x_train, ds.x_test                # (1500, 64), (297, 64) gray values in [0, 1]
X = x_train.astype(np.float64)                         # (1500, 64) for the linear algebra below
k = 8                                                  # the code size C
schedule = figures_ae.LINEAR_SCHEDULE_QUICK if quick else figures_ae.LINEAR_SCHEDULE
print(ds, "| code size k =", k)

# %% [markdown]
# ## The linear autoencoder
#
# With no hidden layers (`hidden_dims=()`) and no nonlinearity (`activation="identity"`) both
# maps are affine:
#
#     h = f(x) = x W_e + b_e        W_e (D, C), b_e (C,)
#     r = g(h) = h W_d + b_d        W_d (C, D), b_d (D,)
#
# Sec. 14.1: "When the decoder is linear and L is the mean squared error, an undercomplete
# autoencoder learns to span the same subspace as PCA." Let us check the two maps against
# the formulas first, on an untrained model.

# %%
ae = tv.Autoencoder(64, hidden_dims=(), code_dim=k, activation="identity", loss="mse", seed=0)
W_e, b_e = ae.params["enc.W0"], ae.params["enc.b0"]   # (64, 8), (8,)
W_d, b_d = ae.params["dec.W0"], ae.params["dec.b0"]   # (8, 64), (64,)
x5 = x_test[:5]                                        # (5, 64)
h = x5 @ W_e + b_e                                     # (5, 8)   the code
r = h @ W_d + b_d                                      # (5, 64)  the reconstruction
print("code h:", ae.encode(x5).shape, " reconstruction r:", ae.decode(h).shape)
assert np.allclose(ae.encode(x5), h, atol=1e-5) and np.allclose(ae.reconstruct(x5), r, atol=1e-5)

# %% [markdown]
# Now train it by minimising the mean of 1/2 ||x - r||^2 over the digits with Adam, first with
# a large step, then with smaller ones so the minibatch noise dies down
# (`figures_ae.linear_autoencoder` runs these stages). PCA needs no training: it is an
# eigendecomposition of the covariance. Both follow scikit-learn's names -- `fit`,
# `transform` (x -> code), `inverse_transform` (code -> reconstruction) -- so they sit side
# by side:

# %%
print("training stages (epochs, learning rate):", schedule)
ae = figures_ae.linear_autoencoder(x_train, k, schedule=schedule, seed=0)
pca = PCA(n_components=k).fit(X)

for name, model in (("PCA", pca), ("linear AE", ae)):
    code = model.transform(x_test)                     # (297, 8)
    x_hat = model.inverse_transform(code)              # (297, 64)
    print(f"{name:9s} transform -> {code.shape}, inverse_transform -> {x_hat.shape}, "
          f"train error {figures_ae.reconstruction_error(model, X):.5f}, "
          f"test error {figures_ae.reconstruction_error(model, x_test):.5f}")

ratio = figures_ae.reconstruction_error(ae, X) / figures_ae.reconstruction_error(pca, X)
print(f"training error, linear AE / PCA = {ratio:.6f}")
assert 1 - 1e-4 < ratio < 1.001          # PCA is the optimum of this very loss; the AE reaches it

# %% [markdown]
# ## The same subspace: principal angles
#
# Equal error suggests the same subspace; principal angles prove it. For two k-dimensional
# subspaces with orthonormal bases Q_A, Q_B (D, k), the singular values of Q_A^T Q_B are the
# cosines of the k principal angles between them (Björck & Golub 1973): all angles are 0
# exactly when the subspaces coincide, *whatever basis* either side uses. The decoder's rows
# (the images g adds up, weighted by h) span the AE's subspace; PCA's is spanned by its
# components v_1..v_k.

# %%
def angles_deg(A, B):                                  # the formula, in NumPy
    QA, _ = np.linalg.qr(A)                            # (64, k) orthonormal basis of span(A)
    QB, _ = np.linalg.qr(B)
    return np.degrees(np.arccos(np.clip(np.linalg.svd(QA.T @ QB, compute_uv=False), -1, 1)))


W_d = ae.params["dec.W0"].astype(np.float64)           # (8, 64): decoder rows
V = pca.components_                                    # (8, 64): PCA components
angles = figures_ae.principal_angles_deg(W_d.T, V.T)
assert np.allclose(angles, angles_deg(W_d.T, V.T))
print("principal angles (degrees):", np.round(angles, 3))
fresh = tv.Autoencoder(64, hidden_dims=(), code_dim=k, activation="identity", seed=0)
before = figures_ae.principal_angles_deg(fresh.params["dec.W0"].T, V.T)
print(f"before training the largest angle was {before.max():.1f} degrees")
assert angles.max() < 2.0 and before.max() > 30

# %% [markdown]
# The angles come out in increasing order whatever the model (they are arccosines of singular
# values, which the SVD sorts), so it is the largest that tells something: the 8th PCA
# direction explains little more variance than the 9th (eigenvalues 0.197, 0.171, then 0.159),
# so the loss is nearly flat between them and gradient descent settles that direction last.
#
# ## ... but not the same basis
#
# The loss only depends on the product of the two maps, so any invertible C x C matrix A can
# be slipped in between, W_e -> W_e A, W_d -> A^-1 W_d, without changing a single
# reconstruction. Training picks one of these bases at random (it depends on the
# initialisation); PCA picks the orthonormal one ordered by variance. Compare the rows:

# %%
cosines = (W_d / np.linalg.norm(W_d, axis=1, keepdims=True)) @ V.T    # (8, 8) cos(row i, v_j)
np.set_printoptions(precision=2, suppress=True)
print("|cos(decoder row i, PCA component j)|:\n", np.abs(cosines))
print("decoder row lengths:", np.linalg.norm(W_d, axis=1), "(PCA components have length 1)")
print("variance of each code unit:", ae.transform(x_train).var(axis=0))
print("variance along each PCA component:", pca.explained_variance_)
assert np.allclose(V @ V.T, np.eye(k), atol=1e-10)      # PCA: orthonormal
assert np.abs(cosines).max(axis=1).min() < 0.9          # AE: every row mixes several components

# %% [markdown]
# Yet PCA is hidden in the autoencoder: diagonalising the covariance of the data inside the
# AE's subspace rotates its basis into the principal components.

# %%
Q, _ = np.linalg.qr(W_d.T)                                         # (64, 8) basis of span(W_d)
Z = (X - X.mean(axis=0)) @ Q                                       # (1500, 8) centred, in that basis
eigvals, eigvecs = np.linalg.eigh(np.cov(Z.T))                     # ascending
recovered = (Q @ eigvecs[:, ::-1]).T                               # (8, 64) descending variance
match = np.abs(np.sum(recovered * V, axis=1))                      # |cos|, component by component
print("|cos(recovered component, PCA component)|:", np.array2string(match, precision=5))
print("variances:", np.array2string(eigvals[::-1], precision=4), "vs PCA:",
      np.array2string(pca.explained_variance_, precision=4))
assert match.min() > 0.99

# %% [markdown]
# One more detail: the *encoder* W_e need not span the subspace. Three pixels of the 8x8
# digits are 0 in every training image; the gradient of W_e's rows for those pixels is
# x_d * (...) = 0, so they keep their random initial values, and they never matter. On the
# other 61 pixels the encoder's columns span the PCA subspace too.

# %%
constant = X.std(axis=0) == 0                                      # (64,) pixels never lit
W_e = ae.params["enc.W0"].astype(np.float64)                       # (64, 8)
all_pixels = figures_ae.principal_angles_deg(W_e, V.T).max()
lit_pixels = figures_ae.principal_angles_deg(W_e[~constant], V.T[~constant]).max()
print(f"constant pixels: {np.flatnonzero(constant)}; largest angle span(W_e) vs PCA: "
      f"{all_pixels:.1f} deg on all pixels, {lit_pixels:.2f} deg on the lit ones")
assert lit_pixels < 5.0 < 20 < all_pixels

# %% [markdown]
# ## A nonlinear autoencoder beats PCA
#
# PCA is the best *linear* code. With nonlinear f and g the autoencoder "can learn a more
# powerful nonlinear generalization of PCA" (sec. 14.1). Keep the code size and the loss, and
# give encoder and decoder one hidden layer of 128 tanh units each:
#
#     h = tanh(tanh(x W_1 + b_1) W_2 + b_2)      64 -> 128 -> C
#     r = tanh(h W_3 + b_3) W_4 + b_4            C -> 128 -> 64
#
# `figures_ae.pca_comparison` trains PCA, the linear AE and this one for several code sizes
# and measures the error on the *test* digits, which no model saw.

# %%
code_dims = (2, 8) if quick else (2, 4, 8, 16, 32)
result = figures_ae.pca_comparison(x_train, x_test, code_dims, linear_schedule=schedule,
                                   nonlinear_epochs=30 if quick else 100, seed=0)
print("test error, mean 1/2 ||x - x_hat||^2, and the largest angle span(W_d) vs PCA subspace")
print("   k     PCA   linear AE   nonlinear AE   max angle")
for i, c in enumerate(code_dims):
    print(f"{c:4d}  {result['pca'][i]:.4f}    {result['linear'][i]:.4f}         {result['nonlinear'][i]:.4f}"
          f"   {result['angles'][i].max():5.2f} deg")
i8 = code_dims.index(8)
assert np.all(np.abs(result["linear"] / result["pca"] - 1) < 0.01)    # linear AE = PCA, on test too
assert result["nonlinear"][i8] < 0.95 * result["pca"][i8]             # nonlinear beats PCA at k = 8
assert result["nonlinear"][0] < 0.95 * result["pca"][0]               # ... and at k = 2

# %% [markdown]
# Where does the nonlinearity help most? Not at the smallest code. In the full run the
# nonlinear model removes about 40% of PCA's error at k = 4 and at k = 8 (1.22 -> 0.73,
# 0.78 -> 0.47), less at k = 2 and k = 16 (27% and 30%: 1.73 -> 1.26, 0.37 -> 0.26), and
# almost nothing at k = 32: with 32 numbers for 64 pixels PCA already keeps almost
# everything (the digits' variance is concentrated in a few dozen directions).
# The quick run trains fewer epochs and tries only k = 2 and 8; there too the error falls by
# a larger fraction at k = 8 than at k = 2.
#
# The figure puts it together: the PCA components, the AE's decoder rows (a different
# basis), the PCA components projected onto the AE's subspace (unchanged), the principal
# angles, and the test error against the code size.

# %%
fig = figures_ae.plot_linear_ae_vs_pca(result, ds.image_shape)
tv.lessons.save_figure(fig, "linear_ae_vs_pca", "03_undercomplete_autoencoder")

models = {f"{name}, k = 8": result["models"][key][i8]
          for key, name in (("pca", "PCA"), ("linear", "linear AE"), ("nonlinear", "nonlinear AE"))}
fig = figures_ae.plot_reconstruction_comparison(x_test[:16], models, ds.image_shape,
                                                title="Test digits and their reconstructions from k = 8 numbers")
tv.lessons.save_figure(fig, "pca_vs_autoencoder_digits", "03_undercomplete_autoencoder")

# %% [markdown]
# ## A small code is not enough: too much capacity copies anyway (secs. 14.1, 14.3)
#
# Sec. 14.1 warns that a small code alone does not make an autoencoder learn anything useful:
# an encoder and decoder with enough capacity could map each training example x_i to a
# number i and back, with a code of size one. Let us try it on a small training set: 40
# digits, a code of one number, and two tanh layers of 128 units on each side, trained long.
# Beside it, PCA with one component, the best *linear* one-number code.

# %%
few = x_train[:40]                                                    # (40, 64)
pca1 = PCA(1).fit(few)


def mean_error(reconstruct, x):
    return float(np.mean(0.5 * np.sum((reconstruct(x) - x) ** 2, axis=1)))


deep = tv.Autoencoder(64, hidden_dims=(128, 128), code_dim=1, activation="tanh", seed=0)
tv.fit(deep, few, epochs=3000, batch_size=40, lr=1e-3, progress=False)
errors = {"PCA, 1 component": lambda x: pca1.inverse_transform(pca1.transform(x)),
          "deep AE, 1-number code": deep.reconstruct}
print("                        train (the 40)   test (297 unseen)")
for name, reconstruct in errors.items():
    train, test = mean_error(reconstruct, few), mean_error(reconstruct, x_test)
    print(f"{name:22s}       {train:.3f}            {test:.3f}")
pca_train, pca_test = (mean_error(errors["PCA, 1 component"], x) for x in (few, x_test))
assert mean_error(deep.reconstruct, few) < 0.6 * pca_train           # it fits the 40 ...
assert mean_error(deep.reconstruct, x_test) > pca_test               # ... and no better beyond

# %% [markdown]
# On the 40 training digits the deep autoencoder's one number reconstructs far better than
# PCA's; on unseen digits it is worse than PCA. It has used its capacity to remember the 40
# (a curve through them in its one-dimensional code) rather than to describe digits. What
# keeps an autoencoder honest is the balance of code size, capacity and data -- deeper
# encoders can represent more (sec. 14.3), which is exactly what lets them copy -- or a
# regularizer that asks the code for something besides reconstruction: lesson 4.

# %% [markdown]
# ## The loss is a negative log-likelihood (sec. 14.4)
#
# Sec. 14.4 reads the decoder as a distribution p_decoder(x | h) whose parameters g(h)
# computes, and the loss as -log p_decoder(x | h). Squared error is a Gaussian with mean r and
# unit variance, up to a constant; cross-entropy (loss="bce") is a Bernoulli with means
# r = sigmoid(l) of the decoder's logits l, for binary x (for gray values in [0, 1] the same
# formula is a cross-entropy between Bernoulli(x) and Bernoulli(r), not a normalised density
# of x):
#
#     -log N(x; r, I)         = 1/2 ||x - r||^2 + D/2 log 2 pi
#     -log Bernoulli(x; r)    = -sum_d [x_d log r_d + (1 - x_d) log(1 - r_d)]
#
# Check both on five test digits (made binary for the Bernoulli), by hand against the
# library's loss:

# %%
x5 = x_test[:5].astype(np.float64)                                    # (5, 64)
D = x5.shape[1]
gauss = tv.Autoencoder(64, hidden_dims=(32,), code_dim=4, loss="mse", dtype="float64", seed=0)
r = gauss.reconstruct(x5)                                             # the Gaussian's mean
neg_log_gauss = 0.5 * np.sum((x5 - r) ** 2, axis=1) + D / 2 * np.log(2 * np.pi)
bern = tv.Autoencoder(64, hidden_dims=(32,), code_dim=4, loss="bce", dtype="float64", seed=0)
x5_bits = (x5 > 0.5).astype(np.float64)                              # (5, 64) binary digits
p = bern.reconstruct(x5_bits)                                         # the Bernoulli's means
neg_log_bern = -np.sum(x5_bits * np.log(p) + (1 - x5_bits) * np.log(1 - p), axis=1)
print("-log N(x; r, I) - mse loss:   ", np.round(neg_log_gauss - gauss.loss_terms(x5)[0], 4),
      f"(D/2 log 2 pi = {D / 2 * np.log(2 * np.pi):.4f})")
bce_miss = np.max(np.abs(neg_log_bern - bern.loss_terms(x5_bits)[0]))
print(f"-log Bernoulli(x; r) - bce loss: at most {bce_miss:.1e}")
assert np.allclose(neg_log_gauss - gauss.loss_terms(x5)[0], D / 2 * np.log(2 * np.pi), rtol=1e-12)
assert np.allclose(neg_log_bern, bern.loss_terms(x5_bits)[0], rtol=1e-10)

# %% [markdown]
# So training an autoencoder is maximum likelihood of a decoder distribution given the code.
# What it lacks is a distribution over the code itself: h = f(x) is a point, and nothing says
# which codes are likely. Give the code a prior p(h) as well and the decoder becomes a
# generative model p(x) = integral of p(x|h) p(h) dh, the latent-variable model of lesson 5 (a
# stochastic encoder q(h|x) then makes it the VAE of lessons 6-8).

# %% [markdown]
# ## Recap
#
# In this lesson we built the undercomplete autoencoder, an encoder h = f(x) and a decoder
# r = g(h) with a code smaller than the input, trained on L(x, g(f(x))) (Goodfellow et al.
# eq. 14.1). With linear maps and squared error it reaches exactly PCA's reconstruction error
# and its decoder spans the PCA subspace: principal angles, the singular values of
# Q_A^T Q_B, are all near 0 degrees. Its basis is not PCA's -- any invertible mixing of the
# code gives the same reconstructions -- but a rotation inside the subspace recovers the
# principal components, and the encoder agrees too except on pixels the data never uses. A
# nonlinear autoencoder with the same code size reconstructs unseen digits better than PCA,
# by the largest fraction at moderate code sizes (k = 4 - 8 in the full run) and hardly at all
# once the code has 32 numbers. A small code alone does not stop copying: a deep autoencoder
# with a one-number code fitted 40 training digits far better than PCA and unseen ones worse.
# The losses are negative log-likelihoods of a decoder distribution p(x|h): squared error a
# unit-variance Gaussian (up to D/2 log 2 pi), cross-entropy a Bernoulli (for binary x).
# Lesson 4 adds a regularizer Omega(h, x) instead of a small code, which also allows a large
# code.
