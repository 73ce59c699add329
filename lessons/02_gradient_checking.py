# %% [markdown]
# # Lesson 2: Gradient checking
#
# Run it: `python lessons/02_gradient_checking.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 2`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/02_gradient_checking.py`.
#
# Lesson 1 derived backward passes by hand. A wrong one rarely crashes: the shapes are right,
# the loss still goes down (more slowly, or to a worse place), and nothing says why. The cure
# is to compare every hand-written gradient with a numerical derivative (Goodfellow et al.
# sec. 11.5, "compare back-propagated derivatives to numerical derivatives"). tinyvae does this
# for every model in its tests (`tinyvae gradcheck`). This lesson is about doing it *well*:
# which difference formula, which step size h, which float type, and which error measure.

# %%
import inspect

import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae.figures_backprop import plot_step_size, step_size_sweep
from tinyvae.gradcheck import check_gradients, check_model, relative_error
from tinyvae.layers import activation_backward, activation_forward, dense_backward

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")

# a function whose derivative we know: f(a) = tanh(a) at a = 0.7, f' from the backward pass
a0 = np.array([[0.7]])
h0, act_cache = activation_forward(a0, "tanh")
exact = activation_backward(np.ones_like(h0), act_cache)[0, 0]      # 1 - tanh(0.7)^2


def f(a):
    return activation_forward(np.array([[a]]), "tanh")[0][0, 0]


print(f"f(a) = tanh(a),  f'(0.7) = {exact:.15f}")
print(f"{'h':>7}  {'forward (f(a+h) - f(a)) / h':>28}  {'central (f(a+h) - f(a-h)) / 2h':>31}")
steps = [1e-1, 1e-2, 1e-3, 1e-4]
forward_err, central_err = [], []
for h in steps:
    forward_err.append(abs((f(0.7 + h) - f(0.7)) / h - exact))
    central_err.append(abs((f(0.7 + h) - f(0.7 - h)) / (2 * h) - exact))
    print(f"{h:7.0e}  error {forward_err[-1]:22.2e}  error {central_err[-1]:25.2e}")
forward_order = np.log10(forward_err[1] / forward_err[2])          # decades of error per decade of h
central_order = np.log10(central_err[1] / central_err[2])
print(f"error shrinks by 10^{forward_order:.2f} (forward) and 10^{central_order:.2f} (central) per decade of h")
assert abs(forward_order - 1) < 0.05 and abs(central_order - 2) < 0.05

# %% [markdown]
# ## Why central differences, and why not a tiny h
#
# Taylor's theorem explains the table. With f(a +- h) = f +- h f' + h^2/2 f'' +- h^3/6 f''' + ...,
#
#     (f(a + h) - f(a)) / h       = f' + h/2 f''   + O(h^2)       error O(h)
#     (f(a + h) - f(a - h)) / 2h  = f' + h^2/6 f''' + O(h^4)      error O(h^2)             (1)
#
# the even terms cancel in the central difference: at the same h it is far more accurate, for
# about twice the evaluations of f (one-sided differences share f(a)). (Goodfellow et al. write
# the centered difference with steps of +- ε/2; tinyvae's h is their ε/2.)
#
# The truncation error (1) says "smaller h is better". Floating point says otherwise: f is
# computed with a relative error of about the machine epsilon eps (2.2e-16 in float64, 1.2e-7
# in float32), and the difference f(a + h) - f(a - h) of two nearly equal numbers keeps that
# absolute error eps |f| while the true difference shrinks with h. Divided by 2h:
#
#     total error  ~  h^2 |f'''| / 6   +   eps |f| / h                                      (2)
#                    (truncation)          (round-off)
#
# smallest at h* = (3 eps |f| / |f'''|)^(1/3) ~ eps^(1/3), where the error is ~ eps^(2/3):

# %%
for dtype in (np.float64, np.float32):
    eps = np.finfo(dtype).eps
    print(f"{np.dtype(dtype).name}: eps = {eps:.1e},  h* ~ eps^(1/3) = {eps ** (1 / 3):.0e},  "
          f"best error ~ eps^(2/3) = {eps ** (2 / 3):.0e}")

# the same central difference of tanh, computed in float32
for h in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
    a32 = np.array([[0.7 - h, 0.7 + h]], dtype=np.float32)
    f32 = activation_forward(a32, "tanh")[0][0]
    step = float(a32[0, 1]) - float(a32[0, 0])                          # 2h, as actually stored
    err32 = abs((f32[1] - f32[0]) / step - exact)
    print(f"float32, h = {h:.0e}: central difference error {err32:.1e}")
    if h == 1e-3:
        err32_at_1e3 = err32
assert err32 > 100 * err32_at_1e3                    # at h = 1e-6 round-off has taken over

# %% [markdown]
# In float32 the error bottoms out near h = 1e-2 .. 1e-3 (at about 2e-6: tanh is a benign
# function, |f| < 1 and f''' modest) and then *grows* as h shrinks: at h = 1e-6 the two values
# of f differ in their last few bits only.
#
# ## Measuring the disagreement
#
# For a whole parameter array, tinyvae compares the analytic gradient a with the numerical one
# n by one number (a variant of the relative error in CS231n's notes, taken over the array):
#
#     err = max|a - n| / max(1e-8, max|a| + max|n|)                                         (3)
#
# *Relative*, because gradients of 1e-6 and of 1e3 both occur and an absolute tolerance suits
# neither; *max over the array*, because one wrong entry is a bug; the floor 1e-8 keeps an
# all-zero gradient (a unit that is never active) from dividing 0 by 0. In float64 with
# h = 1e-5 a correct gradient scores 1e-13 .. 1e-8, so the checker's tolerance is 1e-7.

# %%
print(inspect.getsource(relative_error))
g = np.array([1e-6, -2e-6, 3e-6])                          # small gradients
print("same absolute slip 1e-7 on gradients of size 1e-6:", f"{relative_error(g, g + 1e-7):.1e}")
print("same absolute slip 1e-7 on gradients of size 1:   ", f"{relative_error(g * 1e6, g * 1e6 + 1e-7):.1e}")
print("all-zero gradient, numeric 1e-12:                 ", f"{relative_error(np.zeros(3), np.full(3, 1e-12)):.1e}")
assert relative_error(g, g + 1e-7) > 1e-2 > 1e-7 > relative_error(g * 1e6, g * 1e6 + 1e-7)

# %% [markdown]
# ## The error against h, on a real model
#
# Now the whole picture for a VAE's gradient (the model of lessons 6-8, with tanh so that no
# ReLU kink spoils the h^2 law): the same parameters in float64 and in float32, the relative
# error (3) of the central-difference gradient of the decoder's first weight matrix, for h from
# 1e-10 to 1. `step_size_sweep` runs the library's `numerical_gradient` at each h; the figure
# `tinyvae figures` draws is made by the same two functions.

# %%
hs = np.logspace(-10, 0, 21 if quick else 41)
sweep = step_size_sweep(ds.x_train, hs=hs, n=8 if quick else 32, hidden_dims=(16,), seed=0)
print(sweep["model"], "| checking", sweep["name"], "| |L| =", f"{sweep['loss']:.2f}",
      "| max|g| =", f"{sweep['grad_max']:.3f}")
print(f"{'h':>8}  {'float64':>9}  {'float32':>9}")
for h, e64, e32 in zip(hs, sweep["errors"]["float64"], sweep["errors"]["float32"]):
    print(f"{h:8.0e}  {e64:9.1e}  {e32:9.1e}")
fig = plot_step_size(sweep)
tv.lessons.save_figure(fig, "gradcheck_step_size", "02_gradient_checking")

C, K = sweep["truncation"], sweep["roundoff"]
for dt in ("float64", "float32"):
    predicted = (sweep["eps"][dt] * K / (2 * C)) ** (1 / 3)        # minimum of C h^2 + eps K / h
    print(f"{dt}: best h = {sweep['best_h'][dt]:.0e} (eq. (2) predicts {predicted:.0e}), "
          f"best error = {sweep['best_error'][dt]:.1e}")
best64, best32 = sweep["best_error"]["float64"], sweep["best_error"]["float32"]
assert best64 < 1e-8 and 1e-7 <= sweep["best_h"]["float64"] <= 1e-4
assert best32 > 1e-6 and 1e-4 <= sweep["best_h"]["float32"] <= 1e-1
assert best32 > 1e3 * best64                                         # orders of magnitude apart
assert sweep["errors"]["float64"][np.argmin(abs(np.log10(hs / 1e-5)))] < 1e-7   # the default h passes

# %% [markdown]
# The U of eq. (2), twice. Right of the minimum both dtypes lie on the *same* line C h^2: the
# truncation error belongs to the function, not to the arithmetic. Left of it each dtype follows
# its own round-off line eps |L| / (2 h max|g|) (an upper estimate: rounding errors partly
# cancel), and float32's lies 5 * 10^8 times higher. Far left, float32 cannot even represent
# theta + h != theta and the numerical gradient is 0 (error 1).
#
# So gradient checks run in **float64**: its best error is about 3e-10, five to six orders of
# magnitude below float32's best, and the default h = 1e-5 sits near its minimum. A float32 check could not
# tell a correct gradient from one that is wrong by 0.01 %. The checker refuses to try:

# %%
vae32 = tv.VAE(64, hidden_dims=(16,), latent_dim=2, seed=0)              # float32, for training
x8 = ds.x_train[:8].astype(np.float32)
eps8 = np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32)
try:
    check_model(vae32, x8, eps8)
    refused = False
except tv.TinyVAEError as err:
    refused = True
    print("check_model on a float32 VAE:", err)
assert refused

# %% [markdown]
# Training runs in float32 (twice the speed, and gradient *noise* dwarfs rounding); every model
# takes `dtype="float64"` for checking, with the same code: the kernels are dtype-generic.
#
# ## A wrong backward pass, caught
#
# Here is lesson 1's backward loop through an MLP, with a squared-error loss
# L = 1/(2N) sum (out - y)^2 (so d out = (out - y) / N), written by hand from `dense_backward`
# and `activation_backward` -- and with a switch that plants one of the classic bugs:
#
# * `no_activation_derivative`: forgets eq. (3) of lesson 1 (dA = dH, not dH * f'(A));
# * `transposed_dW`: stores dW^T for a square W, so the shapes still match;
# * `db_mean`: averages the bias gradient over the batch instead of summing (off by N);
# * `off_by_1e-4`: a gradient 0.01 % too large, the kind of slip a wrong constant makes.

# %%
class HandMLP:
    """tv.MLP's forward pass, and a backward pass written by hand with an optional bug."""

    def __init__(self, bug=None, seed=0):
        rng = np.random.default_rng(seed)
        self.mlp = tv.MLP((10, 8, 8, 3), activation="tanh", seed=seed)   # float64; W1 is 8 x 8
        self.params = self.mlp.params
        self.x = rng.standard_normal((6, 10))                           # (N, 10)
        self.y = rng.standard_normal((6, 3))                            # (N, 3) regression targets
        self.bug = bug

    def loss_and_grads(self):
        out, cache = self.mlp.forward(self.x)                           # cache = [h_0 .. h_3]
        N = self.x.shape[0]
        loss = 0.5 * np.sum((out - self.y) ** 2) / N
        dh, grads = (out - self.y) / N, {}                              # d out  (N, 3)
        for i in reversed(range(self.mlp.n_layers)):
            W, _, kind = self.mlp.layer(i)
            if self.bug == "no_activation_derivative":
                da = dh                                                 # BUG: f'(a) forgotten
            else:
                da = activation_backward(dh, (cache[i + 1], kind))
            dh, dW, db = dense_backward(da, (cache[i], W))
            if self.bug == "transposed_dW" and W.shape[0] == W.shape[1]:
                dW = dW.T                                               # BUG: (h_i^T da)^T
            if self.bug == "db_mean":
                db = da.mean(axis=0)                                    # BUG: mean, not sum
            if self.bug == "off_by_1e-4" and i == 0:
                dW = dW * (1 + 1e-4)                                    # BUG: 0.01 % too large
            grads[f"W{i}"], grads[f"b{i}"] = dW, db
        return float(loss), grads


bug_reports = {}
for bug in (None, "no_activation_derivative", "transposed_dW", "db_mean", "off_by_1e-4"):
    report = check_model(HandMLP(bug))
    bug_reports[bug] = report
    verdict = "passes" if report.passed() else "FAILS"
    print(f"{str(bug):26s} max error {report.max_error:8.1e}  {verdict}  (worst: {report.worst.name})")
print()
print(bug_reports["transposed_dW"])

assert bug_reports[None].max_error < 1e-8                               # the correct loop passes
for bug in ("no_activation_derivative", "transposed_dW", "db_mean"):
    assert bug_reports[bug].max_error > 1e-2, bug                       # gross bugs: errors ~ 1
assert bug_reports["transposed_dW"].worst.name == "W1" and bug_reports["db_mean"].worst.name.startswith("b")
assert 1e-7 < bug_reports["off_by_1e-4"].max_error < 1e-3               # caught in float64 ...
assert bug_reports["off_by_1e-4"].max_error < 3 * best32                # ... but lost in float32's noise
print(f"the 0.01 % bug scores {bug_reports['off_by_1e-4'].max_error:.1e}: far above float64's tolerance 1e-7, "
      f"but within float32's noise (its best error on the VAE above is {best32:.1e}): a float32 check would miss it")

# %% [markdown]
# The table names the array and the entry where analytic and numeric gradients differ most:
# that is where to look. Note the last bug: its 5e-5 is far above float64's noise floor and
# within float32's.
#
# ## Checking a whole VAE
#
# A VAE's loss is random: z = mu + exp(logvar/2) * eps with eps ~ N(0, I) (Kingma & Welling
# 2013, the reparameterization trick; lesson 7). A finite difference of a random function is
# noise, so the check holds eps *fixed*: `loss_and_grads(x, eps)` takes eps as an argument, and
# for a fixed eps the loss is an ordinary deterministic function of the parameters, whose exact
# gradient the backward pass claims to compute. Check every parameter array of a float64 VAE:

# %%
hidden = (16,) if quick else (64,)
n_check = 8 if quick else 32
vae = tv.VAE(64, hidden_dims=hidden, latent_dim=2, dtype="float64", seed=0)   # relu, Bernoulli
x = ds.x_train[:n_check]                                                      # (n_check, 64)
eps = np.random.default_rng(1).standard_normal((n_check, 2))                  # fixed noise
report = check_model(vae, x, eps, title=f"VAE 64-{hidden[0]}-2 (relu, Bernoulli), {n_check} digits, eps fixed")
print(report)
n_params = sum(p.size for p in vae.params.values())
print(f"{n_params} parameters, {2 * n_params} loss evaluations")
assert report.passed() and report.max_error < 1e-7

# %% [markdown]
# And with eps drawn afresh at every call -- the mistake of checking the training loss as it
# is used in `fit` -- the "numerical gradient" is the difference of two random losses divided
# by 2e-5, and the check fails for a correct backward pass:

# %%
noise = np.random.default_rng(2)
_, g_fixed = vae.loss_and_grads(x, eps)
g_fixed = {k: v.copy() for k, v in g_fixed.items()}
bad = check_gradients(lambda: vae.loss_and_grads(x, noise.standard_normal((n_check, 2)))[0],
                      vae.params, g_fixed, names=["dec.b0", "enc.b1"], title="eps redrawn at every call")
print(bad)
assert bad.max_error > 1e-1

# %% [markdown]
# The test suite checks every VAE configuration this way (all activations, both likelihoods,
# learned sigma2, beta, deeper nets); `tinyvae gradcheck --model vae` prints the same table:

# %%
for name, rep in tv.vae.gradcheck_suite():
    print(f"{name:42s} max error {rep.max_error:.1e}")
    assert rep.passed(), name

# %% [markdown]
# ## Recap
#
# In this lesson we compared hand-written gradients with central differences
# (f(x + h) - f(x - h)) / 2h, whose truncation error is O(h^2) (the one-sided difference is only
# O(h)) while round-off adds about eps |f| / h: the error against h is a U with its bottom near
# h ~ eps^(1/3). For a real VAE the float64 check reaches about 3e-10 near h = 1e-5, float32
# only about 5e-5 near h = 1e-2 (in the full run; about 1.5e-4 in the quick one), so checks
# run in float64 (and the checker refuses float32). We
# measured the disagreement per array by max|a - n| / max(1e-8, max|a| + max|n|), planted four
# bugs in an MLP's backward pass -- a forgotten activation derivative, a transposed dW, a mean
# for a sum, a 0.01 % slip -- and saw the checker catch each and name the array, and we checked
# every parameter of a VAE with its noise eps held fixed (and saw a redrawn eps break the check).
