# %% [markdown]
# # Lesson 7: The reparameterization trick
#
# Run it: `python lessons/07_reparameterization.py` (add `TINYVAE_QUICK=1` for a quick run),
# step through it cell by cell with `tinyvae lesson 7`, or open it as a notebook with
# `pip install -e ".[notebooks]" && jupytext --to notebook lessons/07_reparameterization.py`.
#
# Lesson 6 gave the VAE its objective, for each x
#
#     ELBO(theta, phi) = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)).
#
# The KL is closed form, so its gradient is too. The gradient of the first term with respect to
# the decoder's theta is easy: average d log p_theta(x|z) / d theta over samples z. But the
# encoder's phi sits in the *distribution* the expectation is taken over: we need
#
#     d/d(mu, logvar) E_{z ~ N(mu, diag(exp(logvar)))}[f(z)],     f(z) = log p(x|z),       (1)
#
# and a sample z has no derivative with respect to the mu and logvar it was drawn with -- a
# sampler is not a differentiable function. This lesson shows why, the trick that fixes it
# (Kingma & Welling 2013 sec. 2.4; Goodfellow et al. sec. 20.9), checks the gradient path it
# opens into the encoder, and compares it with the general-purpose alternative, the
# score-function (REINFORCE) estimator (Williams 1992; Goodfellow et al. sec. 20.9.1).

# %%
import numpy as np

import tinyvae as tv
import tinyvae.lessons
from tinyvae import estimators, recipes
from tinyvae.gradcheck import check_function, check_model
from tinyvae.vae_plots import plot_gradient_variance

quick = tv.lessons.quick()
ds = tv.load_dataset("digits")
x_train = ds.x_train                                   # (1500, 64) gray values in [0, 1]
S = 20000 if quick else 100000                         # one-sample gradient estimates per method

# a toy objective whose expected gradient we know exactly (estimators.Quadratic):
#   f(z) = -1/2 sum_j c_j (z_j - a_j)^2,  E_q[f] = -1/2 sum_j c_j ((mu_j - a_j)^2 + sigma_j^2)
Q = recipes.QUADRATIC
f = estimators.Quadratic(Q["a"], Q["c"])
mu, logvar = np.array(Q["mu"]), np.array(Q["logvar"])  # q = N(mu, diag(exp(logvar))), Z = 2
exact = np.concatenate(f.expected_gradient(mu, logvar))  # (2Z,): [dE/dmu, dE/dlogvar]
print("a =", Q["a"], " c =", Q["c"], " mu =", mu, " sigma^2 =", np.exp(logvar))
print("exact gradient of E_q[f]: d/dmu =", exact[:2], " d/dlogvar =", exact[2:])

# %% [markdown]
# ## Why we cannot backprop through sampling
#
# Estimate E_q[f] by an average over n samples (n = 1000 here) and differentiate that number
# with respect to mu_1 by central differences. If every evaluation draws fresh samples, the two
# sides differ by Monte Carlo noise of size ~ std(f) / sqrt(n), and dividing by 2h blows it up: the
# "derivative" is noise. If instead both sides use the *same* standard-normal draws eps, with
# z = mu + sigma * eps, the difference quotient is smooth in mu -- and equals the average of
# f'(z) dz/dmu, the reparameterization estimate below, to rounding error.

# %%
def mc_objective(mu, eps):
    """The n-sample estimate of E_q[f(z)], z = mu + sigma * eps:  eps (n, Z) -> a number."""
    return f.value(mu + np.exp(0.5 * logvar) * eps).mean()


rng = np.random.default_rng(0)
n, h, e1 = 1000, 1e-4, np.array([1.0, 0.0])
fresh = [(mc_objective(mu + h * e1, rng.standard_normal((n, 2)))
          - mc_objective(mu - h * e1, rng.standard_normal((n, 2)))) / (2 * h) for _ in range(5)]
eps = rng.standard_normal((n, 2))                      # (n, Z), held fixed
fixed = (mc_objective(mu + h * e1, eps) - mc_objective(mu - h * e1, eps)) / (2 * h)
pathwise = estimators.reparameterization_gradient(f, mu, logvar, eps)[0][:, 0].mean()   # mean of f'(z) dz/dmu_1
print(f"exact dE/dmu_1 = {exact[0]:.4f}")
print("fresh samples on each side:", np.round(fresh, 1))
print(f"the same eps on both sides: {fixed:.6f};  reparameterization estimate: {pathwise:.6f}")
assert abs(fixed - pathwise) < 1e-6                   # the same derivative
assert np.std(fresh) > 100 * abs(exact[0])            # noise, not a derivative

# %% [markdown]
# For a Gaussian the fix was available all along: sampling N(mu, sigma^2) *is* mu + sigma * eps
# for a standard-normal eps. For a discrete variable no such smooth path exists. A Bernoulli
# sample b = [u < p], u ~ U(0, 1), is a step function of p: its derivative is 0 wherever it
# exists, so backprop through it reports d E[b] / dp = 0, although E[b] = p and the answer is 1.
# The score function d log P(b; p) / dp needs no derivative of the sample (Goodfellow et al.
# sec. 20.9.1) -- we come back to it below.

# %%
p, u = 0.3, np.random.default_rng(1).uniform(size=S)
b = (u < p).astype(float)                              # S Bernoulli(p) samples; d b / d p = 0
score = b * (b / p - (1 - b) / (1 - p))                # f(b) d/dp log P(b; p), f(b) = b
mean, se = estimators.mean_and_standard_error(score)
print(f"d E[b] / dp = 1;  backprop through the sample: 0;  score-function estimate: {mean:.3f} +- {se:.3f}")
assert abs(mean - 1) < 4 * se

# %% [markdown]
# ## The trick, and the gradient path it opens
#
# Draw the noise outside the model, eps ~ N(0, I), and make z a deterministic, differentiable
# function of the encoder's outputs (Kingma & Welling eq. 4 and sec. 2.4):
#
#     z = mu + exp(logvar / 2) * eps,     dz/dmu = 1,     dz/dlogvar = eps * exp(logvar / 2) / 2.   (2)
#
# Then backprop carries dL/dz from the decoder through (2) into [mu, logvar] and on into the
# encoder; the KL term adds its own closed-form gradient. The library's kernel pair
# `kernels.reparameterize` / `kernels.reparameterize_backward` does exactly this (with the KL
# scaled by kl_scale). Check both against NumPy and central differences, eps held fixed:

# %%
rng = np.random.default_rng(2)
N, Z = 5, 3
mu_b, logvar_b = rng.normal(size=(N, Z)), 0.5 * rng.normal(size=(N, Z))   # a batch of encoder outputs
eps_b = rng.standard_normal((N, Z))                    # the noise, drawn outside
z, kl = tv.kernels.reparameterize(mu_b, logvar_b, eps_b)                 # (N, Z), (N,)
assert np.allclose(z, mu_b + np.exp(0.5 * logvar_b) * eps_b, rtol=1e-14, atol=0)

dz_up, kl_scale = rng.normal(size=(N, Z)), 0.5         # an upstream gradient dL/dz, and the KL weight


def loss(mu, logvar):                                  # L = sum(dz_up * z) + kl_scale * sum(KL)
    z, kl = tv.kernels.reparameterize(mu, logvar, eps_b)
    return np.sum(dz_up * z) + kl_scale * np.sum(kl)


dmu, dlogvar = tv.kernels.reparameterize_backward(dz_up, mu_b, logvar_b, eps_b, kl_scale)
report = check_function(loss, {"mu": mu_b.copy(), "logvar": logvar_b.copy()}, {"mu": dmu, "logvar": dlogvar},
                        title="reparameterize_backward against central differences")
print(report)
assert report.max_error < 1e-8

# %% [markdown]
# Now the whole VAE in float64 (`tinyvae.gradcheck.check_model`, the noise eps passed in and
# held fixed). With beta = 0 there is no KL term, so every bit of the encoder's gradient has
# come back through z: it is the path (2) opens. With fresh noise at every evaluation -- what
# "backprop through a sampler" would mean -- the same check fails completely.

# %%
xb = x_train[:8]                                       # (8, 64)
eps = np.random.default_rng(3).standard_normal((8, 2))  # (8, Z), fixed
for beta in (1.0, 0.0):
    net = tv.VAE(64, hidden_dims=(16,), latent_dim=2, beta=beta, dtype="float64", seed=0)
    report = check_model(net, xb, eps, title=f"VAE 64-16-2, beta = {beta}, eps fixed")
    print(report, "\n")
    assert report.max_error < 1e-7
_, grads = net.loss_and_grads(xb, eps)                 # beta = 0: the reconstruction term only
print(f"beta = 0: largest |dL/d enc.W0| = {np.abs(grads['enc.W0']).max():.3e} -- all of it through z")
assert np.abs(grads["enc.W0"]).max() > 1e-3


class FreshNoise:
    """The same VAE, but every loss evaluation draws new eps."""

    def __init__(self, vae, seed):
        self.vae, self.params, self.rng = vae, vae.params, np.random.default_rng(seed)

    def loss_and_grads(self, x):
        return self.vae.loss_and_grads(x, self.rng.standard_normal((len(x), self.vae.latent_dim)))


noisy = check_model(FreshNoise(net, 4), xb, names=["enc.W1", "enc.b1"], title="the same VAE, fresh eps per call")
print(noisy)
assert noisy.max_error > 0.5

# %% [markdown]
# ## Two unbiased gradient estimators
#
# For q = N(mu, diag(sigma^2)), sigma^2 = exp(logvar), and samples eps ~ N(0, I),
# z = mu + sigma * eps, the gradient (1) has two unbiased one-sample estimates
# (`tinyvae.estimators`):
#
#     reparameterization   g_mu = f'(z),                g_logvar = f'(z) * eps * sigma / 2          (3)
#     score function       g_mu = (f(z) - b) eps / sigma,   g_logvar = (f(z) - b) (eps^2 - 1) / 2     (4)
#
# These are eqs. (6) and (7) of `tinyvae.estimators`, the numbers in the figure's legend.
# (3) is (2) and the chain rule. (4) comes from d/dphi ∫ q f dz = ∫ f q d(log q)/dphi dz
# = E_q[f d(log q)/dphi]: it needs only *values* of f, never its derivative -- which is why it
# also works for discrete z -- and any baseline b that does not depend on z keeps it unbiased,
# because E_q[d log q / dphi] = 0. Both are averaged over n samples in practice. On the
# quadratic, where the answer is known:

# %%
eps = np.random.default_rng(5).standard_normal((S, 2))                    # (S, Z), the same for all
one = {m: estimators.per_sample_gradients(f, mu, logvar, eps, m) for m in estimators.ESTIMATORS}   # (S, 2Z) each
print(f"{'':20s} {'dE/dmu_1':>17s} {'dE/dmu_2':>17s} {'dE/dlogvar_1':>17s} {'dE/dlogvar_2':>17s}   one-sample std (RMS)")
print(f"{'exact':20s}" + "".join(f"{v:17.3f}" for v in exact))
for m, g in one.items():
    g_mean, g_se = estimators.mean_and_standard_error(g)
    print(f"{m:20s}" + "".join(f"{a:9.3f} +-{s:6.3f}" for a, s in zip(g_mean, g_se))
          + f"   {np.sqrt(np.mean(g.var(axis=0))):8.3f}")
    assert np.all(np.abs(g_mean - exact) < 4 * g_se)   # unbiased: within 4 standard errors
rms = {m: np.sqrt(np.mean(g.var(axis=0))) for m, g in one.items()}
assert rms["score"] > 4 * rms["reparameterization"] and rms["score_baseline"] > 2 * rms["reparameterization"]

# %% [markdown]
# All three are unbiased, but the score-function estimates scatter almost seven times as widely
# (four times with the baseline): they use f only through its value, multiplied by a random
# factor like eps / sigma, so anything that shifts f -- here f is around -4 -- turns into
# noise. The baseline b = f(mu) removes much of that shift; the reparameterization estimate
# uses the slope f'(z), which is what the gradient is about.
#
# ## On a real objective: f(z) = log p(x|z) of a trained decoder
#
# Train a small VAE (64-64-2, Bernoulli decoder, float64; `recipes.small_vae`), take one test
# digit x, its encoder's q(z|x), and f(z) = log p(x|z) (`estimators.DecoderLogLikelihood`, f'(z)
# by the decoder's backward pass). No exact answer now, so compare the estimators with each other.
# `recipes.gradient_variance_study` measures the spread of n-sample estimates, n = 1, 4, 16, ...,
# over many repeats; the figure of the chapter draws the same numbers.

# %%
vae = recipes.small_vae(x_train, epochs=30 if quick else 60)
x0 = ds.x_test[:1]                                     # one test digit (1, 64)
settings = recipes.gradient_variance_study(vae, x0, quick=quick)   # [quadratic, decoder]
dec = settings[1]
mu0, logvar0 = vae.encode(x0)
print(f"q(z|x): mu = {np.round(mu0[0], 3)}, sigma^2 = {np.round(np.exp(logvar0[0]), 4)};  "
      f"f(mu) = log p(x|z=mu) = {estimators.DecoderLogLikelihood(vae, x0).value(mu0)[0]:.2f} nats")
means = {m: estimators.mean_and_standard_error(g) for m, g in dec["one_sample"].items()}
ref, ref_se = means["reparameterization"]
for m, (g_mean, g_se) in means.items():
    print(f"{m:20s} mean " + " ".join(f"{a:8.3f} +-{s:6.3f}" for a, s in zip(g_mean, g_se)))
    assert np.all(np.abs(g_mean - ref) < 4 * np.sqrt(g_se**2 + ref_se**2))   # all estimate the same gradient
print("\n     n   std of the n-sample estimate (RMS over the 4 coordinates)")
print("       " + "".join(f"{m:>22s}" for m in dec["curve"]))
curve_rms = {m: np.sqrt(np.mean(c["std"] ** 2, axis=1)) for m, c in dec["curve"].items()}   # (len(ns),)
for i, n in enumerate(dec["ns"]):
    print(f"{n:6d} " + "".join(f"{curve_rms[m][i]:22.4f}" for m in dec["curve"]))
ratio = curve_rms["score"] / curve_rms["reparameterization"]
print(f"score / reparameterization std: {np.round(ratio, 1)};  "
      f"with baseline: {np.round(curve_rms['score_baseline'] / curve_rms['reparameterization'], 1)}")
print(f"samples the score function needs for the reparameterization estimate's precision: "
      f"{np.mean(ratio)**2:.0f} times as many")
assert np.all(ratio > 10)                              # reparameterization: far less noisy
assert np.all(curve_rms["score_baseline"] > 1.5 * curve_rms["reparameterization"])
fall = curve_rms["reparameterization"][0] / curve_rms["reparameterization"][-1]
assert 0.75 < fall / np.sqrt(dec["ns"][-1] / dec["ns"][0]) < 1.33   # std ~ 1/sqrt(n)

fig = plot_gradient_variance(settings)
tv.lessons.save_figure(fig, "gradient_variance", "07_reparameterization")

# %% [markdown]
# Since the spread falls like 1/sqrt(n), a score-function estimate of this gradient needs
# ratio^2 -- hundreds of times (the printout above) -- as many samples for the same precision
# as the reparameterization estimate. f = log p(x|z) is about -20 nats for this digit; without
# a baseline that whole offset multiplies the random factor eps / sigma. The
# reparameterization estimate is why a VAE trains with a single sample of z per example per
# step.
#
# ## Recap
#
# In this lesson we saw why the encoder's gradient is the hard part of the ELBO: a sample has
# no derivative with respect to the parameters it was drawn with, and finite differences over
# fresh samples are pure noise (and for a discrete sample backprop reports 0). The
# reparameterization z = mu + exp(logvar/2) * eps moves the randomness into an input eps, so
# that dz/dmu = 1 and dz/dlogvar = eps exp(logvar/2) / 2 carry the decoder's gradient into the
# encoder; we checked the kernel pair and a whole float64 VAE against central differences with
# eps held fixed, and watched the check fail when eps is redrawn. We compared it with the
# score-function (REINFORCE) estimator, which needs only values of f: both are unbiased, but on
# a trained decoder the score function's spread is tens of times larger. The one-line baseline
# b = f(mu) removes most of that gap, to two to three times the reparameterization spread;
# the reparameterization estimate is still the tightest, and the baseline version needs the
# square of that ratio, some 4 to 8 times as many samples, to match it. Every estimator's
# spread falls only like 1/sqrt(n). Lesson 8 trains VAEs with the one-sample reparameterized
# ELBO.
