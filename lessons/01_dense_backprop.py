# %% [markdown]
# # Lesson 1: Dense layers and backprop by hand
#
# Run it: `python lessons/01_dense_backprop.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 1`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/01_dense_backprop.py`.
#
# An autoencoder (Goodfellow et al. ch. 14) is two networks, an encoder h = f(x) and a decoder
# r = g(h), trained by gradient descent on a loss L(x, g(f(x))) (sec. 14.1). Everything in this
# course -- autoencoders, VAEs -- is built from one piece, the dense layer followed by an
# elementwise activation, and trained with one algorithm, back-propagation (sec. 6.5). No
# autodiff here: tinyvae writes every backward pass by hand. This lesson derives them.
#
# Conventions (those of `tinyvae.layers`, and of the book's minibatch example in sec. 6.5.7,
# H = max{0, X W^(1)}; sec. 6.5.4 writes single examples as columns, W h): examples are *rows*.
# A batch X has shape (N, fan_in); a dense layer computes
#
#     Y = X W + b,        X (N, fan_in),  W (fan_in, fan_out),  b (fan_out,),  Y (N, fan_out)   (1)
#
# and for any array A we write dA for dL/dA, the gradient of the scalar loss L -- it always has
# the shape of A.

# %%
import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae.figures_backprop import activation_curves, plot_activations, plot_mlp_graph
from tinyvae.layers import (activation_backward, activation_forward, dense_backward,
                            dense_forward)

quick = tv.lessons.quick()
rng = np.random.default_rng(0)
N, fan_in, fan_out = 4, 3, 2
X = rng.standard_normal((N, fan_in))           # (4, 3)  a batch of 4 examples
W = rng.standard_normal((fan_in, fan_out))     # (3, 2)
b = rng.standard_normal(fan_out)               # (2,)    broadcast over the rows

Y, cache = dense_forward(X, W, b)              # (4, 2)
print("X", X.shape, "@ W", W.shape, "+ b", b.shape, "-> Y", Y.shape)
assert np.allclose(Y, X @ W + b)

# %% [markdown]
# ## The chain rule on one dense layer
#
# Suppose the rest of the network has already given us dY = dL/dY, shape (N, fan_out) (the
# "upstream" gradient). In components eq. (1) is  Y[n,j] = sum_i X[n,i] W[i,j] + b[j], and the
# chain rule (Goodfellow et al. eq. 6.45: sum over every path from a variable to L) gives
#
#     dW[i,j] = sum_n dY[n,j] ∂Y[n,j]/∂W[i,j] = sum_n X[n,i] dY[n,j]  ->  dW = X^T dY   (fan_in, fan_out)
#     dX[n,i] = sum_j dY[n,j] ∂Y[n,j]/∂X[n,i] = sum_j dY[n,j] W[i,j]  ->  dX = dY W^T   (N, fan_in)
#     db[j]   = sum_n dY[n,j] ∂Y[n,j]/∂b[j]   = sum_n dY[n,j]          ->  db = sum_n dY  (fan_out,)  (2)
#
# A useful check while deriving: there is only one way to multiply the available arrays into
# the right shape. dW must be (fan_in, fan_out) and is made of X (N, fan_in) and dY
# (N, fan_out): it can only be X^T dY. The bias is added to every row, so its gradient sums the
# rows. To have a concrete L, take L = sum(Y * G) for a fixed G: then dY = G exactly.

# %%
G = rng.standard_normal((N, fan_out))          # dY = dL/dY for L = sum(Y * G)      (4, 2)

# eq. (2) written as explicit sums over indices (slow, but reads like the derivation)
dW_sum = np.einsum("ni,nj->ij", X, G)          # sum_n X[n,i] G[n,j]                 (3, 2)
dX_sum = np.einsum("nj,ij->ni", G, W)          # sum_j G[n,j] W[i,j]                 (4, 3)
db_sum = G.sum(axis=0)                         # sum_n G[n,j]                        (2,)

dX, dW, db = dense_backward(G, cache)          # the library: dY W^T, X^T dY, sum_n dY
for name, mine, lib, var in (("X", dX_sum, dX, X), ("W", dW_sum, dW, W), ("b", db_sum, db, b)):
    print(f"d{name}: shape {lib.shape}, the shape of {name}; "
          f"max |index sums - dense_backward| = {np.max(np.abs(mine - lib)):.1e}")
    assert lib.shape == var.shape and np.allclose(mine, lib, rtol=0, atol=1e-12)

# %% [markdown]
# ## Activations
#
# A hidden layer follows the affine map with an elementwise nonlinearity H = f(A) (Goodfellow et
# al. sec. 6.3: ReLU, logistic sigmoid, tanh; softplus is sec. 3.10). Elementwise means the
# Jacobian is diagonal, and the chain rule is a plain product:
#
#     dA = dH * f'(A)           (elementwise; dA, dH, A all (N, F))                       (3)
#
# tinyvae writes f' through the *output* h = f(a), so the backward pass needs only H:
#
#     relu' = [h > 0]    tanh' = 1 - h^2    sigmoid' = h (1 - h)    softplus' = sigmoid(a) = 1 - exp(-h)
#
# (the cache of `activation_forward` is just (H, kind)). Check each against the formula in
# terms of a:

# %%
a = np.array([[-3.0, -0.5, 0.25, 2.0]])                    # (1, 4) pre-activations
sig = 1 / (1 + np.exp(-a))
formulas = {                                               # f'(a) written with a, not h
    "relu": (a > 0).astype(float),
    "leaky_relu": np.where(a > 0, 1.0, 0.01),
    "tanh": 1 / np.cosh(a) ** 2,
    "sigmoid": sig * (1 - sig),
    "softplus": sig,
    "identity": np.ones_like(a),
}
for kind, deriv in formulas.items():
    h, act_cache = activation_forward(a, kind)
    da = activation_backward(np.ones_like(h), act_cache)   # dH = 1: dA = f'(A)
    print(f"{kind:10s} f(a) = {np.round(h[0], 4)}   f'(a) = {np.round(da[0], 4)}")
    assert np.allclose(da, deriv, rtol=1e-12, atol=1e-15)

# %% [markdown]
# ### Large pre-activations
#
# Written naively, sigmoid(a) = 1 / (1 + exp(-a)) and softplus(a) = log(1 + exp(a)) overflow:
# exp(1e4) is inf in any float type. The library computes through e = exp(-|a|) <= 1
# (Goodfellow et al. sec. 4.1 on overflow; the softplus identity of sec. 3.10):
#
#     sigmoid(a) = 1 / (1 + e)  for a >= 0,   e / (1 + e)  otherwise
#     softplus(a) = max(a, 0) + log1p(e)
#
# so both are exact at |a| = 1e4, and so are their derivatives (the Bernoulli decoder of the
# VAE feeds its logits through exactly these). Overflow is not the only trap: at a = -30 the
# naive 1 + exp(a) rounds away the last digits of exp(-30), and log1p keeps them.

# %%
big = np.array([[-1e4, -30.0, 30.0, 1e4]])
with np.errstate(over="ignore"):
    naive_softplus = np.log(1 + np.exp(big))
show = lambda v: np.array2string(v, precision=4)           # noqa: E731
print(f"a = {big[0]}")
print(f"naive log(1 + exp(a))      = {show(naive_softplus[0])}")
for kind in ("sigmoid", "softplus"):
    h, act_cache = activation_forward(big, kind)
    da = activation_backward(np.ones_like(h), act_cache)
    print(f"tinyvae {kind:9s} f(a) = {show(h[0])},  f'(a) = {show(da[0])}")
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(da))
sp = activation_forward(big, "softplus")[0][0]
e30 = np.exp(-30.0)
exact_sp30 = e30 - e30**2 / 2                              # log(1 + e) = e - e^2/2 + ..., e = exp(-30)
print(f"softplus(-30): exact {exact_sp30:.6e}, naive off by {abs(naive_softplus[0, 1] / exact_sp30 - 1):.1e}, "
      f"tinyvae off by {abs(sp[1] / exact_sp30 - 1):.1e} (relative)")
assert np.isinf(naive_softplus[0, -1]) and sp[-1] == 1e4  # the naive formula overflows, tinyvae's is exact
assert abs(naive_softplus[0, 1] / exact_sp30 - 1) > 1e-4 > 1e-14 > abs(sp[1] / exact_sp30 - 1)
sg = activation_forward(big, "sigmoid")[0][0]
assert sg[0] == 0.0 and sg[-1] == 1.0

curves = activation_curves()
fig = plot_activations(curves)
tv.lessons.save_figure(fig, "activations", "01_dense_backprop")
worst = max(np.max(np.abs(df - num)[np.abs(a_) > 1e-3]) for a_, _, df, num in curves.values())
print(f"largest |f'(a) - central difference| on the grid (away from the kink at 0): {worst:.1e}")
assert worst < 1e-8

# %% [markdown]
# (Writing f' through h has a price in the saturated tails: at a = 30, sigmoid' = h (1 - h) is
# computed from h = 1 - 9.4e-14 *as stored*, and only about three digits of the product are
# right -- the printout above shows 9.348e-14 for f'(30) against 9.358e-14 for f'(-30), where
# the two must be equal. A gradient of 1e-13 never matters; the lessons' gradient checks stay at
# moderate a.)

# %% [markdown]
# ## A multilayer perceptron
#
# Stack L dense layers, each followed by its activation (identity on the last, a linear output):
#
#     h_0 = x,   a_i = h_i W_i + b_i,   h_{i+1} = f(a_i),   i = 0 .. L-1                   (4)
#
# `tv.MLP` does this; its forward pass returns the output and a *cache*: the list
# (h_0, ..., h_L), all the backward pass will need. Take one on the 8x8 digits (64 pixels):

# %%
ds = tv.load_dataset("digits")
n_batch = 16 if quick else 64
x = ds.x_train[:n_batch]                                   # (n_batch, 64)
mlp = tv.MLP((64, 32, 16, 8), activation="tanh", seed=0)   # float64 by default
out, mlp_cache = mlp.forward(x)
print(mlp)
for i, h in enumerate(mlp_cache):
    print(f"  cache h_{i}: {h.shape}")
for name, p in mlp.params.items():
    print(f"  param {name}: {p.shape}")
assert [h.shape for h in mlp_cache] == [(n_batch, 64), (n_batch, 32), (n_batch, 16), (n_batch, 8)]
fig = plot_mlp_graph(mlp, batch="N", title=f"Backprop through the {'-'.join(map(str, mlp.sizes))} tanh MLP "
                                             f"(N = {n_batch}): every node's shape, and its gradient's formula")
tv.lessons.save_figure(fig, "backprop_graph", "01_dense_backprop")

# %% [markdown]
# ## Backward through the MLP
#
# Run eq. (4) backwards: start from d h_L (the upstream gradient), and for i = L-1 down to 0
# apply eq. (3) through the activation, then eq. (2) through the dense layer:
#
#     da_i = dh_{i+1} * f'(a_i)        (f' read off h_{i+1}, from the cache)
#     dW_i = h_i^T da_i,   db_i = sum_n da_i,   dh_i = da_i W_i^T                         (5)
#
# This is Goodfellow et al. algorithm 6.4 with row vectors. `MLP.backward` does it in one loop
# with fused kernels and writes the results into `mlp.grads`; here is the same loop from the
# one-layer functions, to compare.

# %%
G = rng.standard_normal(out.shape)                         # d out for L = sum(out * G)   (N, 8)
dx = mlp.backward(G, mlp_cache)                            # fills mlp.grads; returns dL/dx
grads = {k: v.copy() for k, v in mlp.grads.items()}

dh = G
for i in reversed(range(mlp.n_layers)):
    W_i, b_i, kind = mlp.layer(i)
    da = activation_backward(dh, (mlp_cache[i + 1], kind))             # eq. (3)     (N, d_{i+1})
    dh, dW_i, db_i = dense_backward(da, (mlp_cache[i], W_i))           # eq. (2)     dh: (N, d_i)
    print(f"layer {i}: da {da.shape}  dW_{i} {dW_i.shape}  db_{i} {db_i.shape}  dh_{i} {dh.shape}")
    assert np.allclose(dW_i, grads[f"W{i}"], rtol=1e-12, atol=1e-14)
    assert np.allclose(db_i, grads[f"b{i}"], rtol=1e-12, atol=1e-14)
assert np.allclose(dh, dx, rtol=1e-12, atol=1e-14)
print("the layer-by-layer loop reproduces MLP.backward for every W_i, b_i and dL/dx")

# %% [markdown]
# ## Is it right? One finite difference
#
# A derivation can be wrong in ways that still give the right shapes. The definition of the
# derivative gives an independent answer: nudge one weight by +-h and watch the loss,
#
#     dL/dW[i,j] ~= (L(W + h E_ij) - L(W - h E_ij)) / (2 h)                                (6)
#
# Lesson 2 does this for every entry, explains the choice of h, and shows what a bug looks like.

# %%
def loss():
    return float(np.sum(mlp(x) * G))                       # L = sum(out * G), a scalar


W1 = mlp.params["W1"]                                      # (32, 16), the live array
i, j, h = 3, 5, 1e-5
old = W1[i, j]
W1[i, j] = old + h
plus = loss()
W1[i, j] = old - h
minus = loss()
W1[i, j] = old                                             # put it back
numeric = (plus - minus) / (2 * h)
analytic = grads["W1"][i, j]
rel = abs(analytic - numeric) / (abs(analytic) + abs(numeric))
print(f"dL/dW1[{i},{j}]: backprop {analytic:+.12f}, central difference {numeric:+.12f}, "
      f"relative difference {rel:.1e}")
assert rel < 1e-7

# %% [markdown]
# ## Recap
#
# In this lesson we derived the backward pass of a dense layer Y = X W + b from the chain rule:
# dX = dY W^T, dW = X^T dY, db = sum over the batch of dY -- each gradient with the shape of
# its variable, which is a strong hint while deriving. An elementwise activation multiplies the
# gradient by f'(a), which tinyvae reads off the output h (tanh' = 1 - h^2, sigmoid' = h(1 - h));
# sigmoid and softplus are computed through exp(-|a|) and stay exact at |a| = 1e4. An MLP's
# backward pass is these two steps in a loop from the last layer to the first, using only the
# cached h_i; we rebuilt `MLP.backward` from `dense_backward` and `activation_backward` and
# confirmed one entry with a central finite difference. Lesson 2 turns that check into a tool.
