"""Monte Carlo estimators of the VAE lessons (5-7): log p(x), the ELBO's terms, gradients.

Lesson 5, the marginal likelihood p(x) = int p(x|z) p(z) dz, three ways:

    naive Monte Carlo     p(x) ~= 1/k sum_i p(x|z_i),                 z_i ~ p(z)          (1)
    importance sampling   p(x) ~= 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x)        (2)
    quadrature (Z <= 2)   p(x) ~= sum_g p(x|z_g) p(z_g) dA  on a grid of z_g                (3)

(2) is ``VAE.log_likelihood`` (Burda et al. 2015); (1) and (3) are here. Both (1) and (2) are
unbiased for p(x) (their logs are not: by Jensen, E[log of the estimate] <= log p(x)), but (1)
wastes almost every sample where p(x|z) is negligible: its *effective sample size*
(sum w)^2 / sum w^2, w_i = p(x|z_i), is a few percent of k in two latent dimensions (lesson
5's linear-Gaussian model), and stays near 1 whatever k in more than a few (10 or 20 there).

Lesson 6, the ELBO in its correct form (the slides drop the logs):

    ELBO = E_q[log p(x|z)] + E_q[log p(z)] - E_q[log q(z|x)]                               (4)
    KL(q(z|x) || p(z)) = E_q[log q(z|x) - log p(z)]                                         (5)

:func:`elbo_terms` returns the three log densities at samples z = mu + sigma * eps, so each
expectation of (4) and the KL of (5) is a sample mean.

Lesson 7, two unbiased estimators of the gradient of E_q[f(z)], q = N(mu, diag(sigma^2)),
sigma^2 = exp(logvar), with respect to theta = (mu, logvar), for samples eps ~ N(0, I):

    reparameterization    z = mu + sigma eps,   g_mu = f'(z),   g_logvar = f'(z) eps sigma / 2   (6)
    score function        g = (f(z) - b) d/dtheta log q(z), b a baseline (0 or f(mu)):
                          g_mu = (f(z) - b) eps / sigma,   g_logvar = (f(z) - b) (eps^2 - 1) / 2 (7)

with f'(z) = df/dz. (6) is the chain rule through z = mu + sigma eps (dz/dmu = 1,
dz/dlogvar = eps sigma / 2), the reparameterization trick of Kingma & Welling 2013 sec. 2.4;
(7) is Williams' 1992 REINFORCE, the high-variance estimator Kingma & Welling sec. 2.2 sets
out to replace, with d log q / d mu = eps / sigma and d log q / d logvar = (eps^2 - 1) / 2 at
z = mu + sigma eps.

(7) only needs values of f, (6) needs its gradient. A baseline b that does not depend on z
leaves (7) unbiased, because E_q[d log q / d theta] = 0; here b = f(mu) when asked for.
Objectives are small classes with ``value(z) -> (S,)`` and ``grad(z) -> (S, Z)``:
:class:`Quadratic` (exact gradient known) and :class:`DecoderLogLikelihood` (f(z) = log p(x|z)
under a VAE's decoder).

Everything returns float64.
"""
import numpy as np

from .errors import TinyVAEError
from .model import check_positive_int

LOG_2PI = np.log(2 * np.pi)


# --------------------------------------------------------------------------------------------
# log densities and log-mean-exp

def log_normal(z, mu, logvar):
    """log N(z; mu, diag(exp(logvar))), summed over the last axis (broadcasting)."""
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar), axis=-1)


def log_standard_normal(z):
    """log N(z; 0, I), summed over the last axis: the prior log p(z)."""
    return -0.5 * np.sum(LOG_2PI + z**2, axis=-1)


def log_mean_exp(a, axis=0):
    """log(mean(exp(a))) along ``axis``, without overflow (the max is factored out)."""
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)        # a column of -inf (weights all 0): its log is -inf
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.mean(np.exp(a - m), axis=axis))


def effective_sample_size(log_w, axis=0):
    """(sum w)^2 / sum w^2 for weights w = exp(log_w): between 1 (one weight dominates) and k."""
    log_w = np.asarray(log_w, dtype=np.float64)
    w = np.exp(log_w - np.max(log_w, axis=axis, keepdims=True))
    return np.sum(w, axis=axis) ** 2 / np.sum(w * w, axis=axis)


def log_px_given_z(vae, x, z):
    """log p(x|z) under ``vae``'s decoder for matching rows: x (N, D), z (N, Z) -> (N,)."""
    z = vae._input(z, "z", dim=vae.latent_dim)
    x = vae._data(x)
    if x.shape[0] != z.shape[0]:
        raise TinyVAEError(f"x and z must have one row each per example: x has {x.shape[0]} rows, "
                           f"z {z.shape[0]}")
    o = vae.decoder(z)                                          # (N, D) logits or means
    return -vae._nll(o, x).astype(np.float64)                   # the decoder's own -log p(x|z)


def _check_x(vae, x):
    """x checked as the model checks its own data: shape (N, D) (one image may be 1-D), finite,
    in [0, 1] for a Bernoulli decoder (0..255 pixels had given log p(x) of +392); the model's dtype."""
    return vae._data(x)


# --------------------------------------------------------------------------------------------
# lesson 5: log p(x) by naive Monte Carlo and by quadrature

def naive_log_likelihood(vae, x, k=1000, seed=0, chunk=None, return_ess=False):
    """Naive Monte Carlo estimate of log p(x), eq. (1): samples from the prior, not from q.

        log p(x) ~= log (1/k) sum_i p(x|z_i),   z_i ~ p(z) = N(0, I)

    Inputs: x (N, D), k samples per example (the same z_i serve every example).
    Returns: (N,) estimates, and with ``return_ess`` also the effective sample sizes (N,).
    Memory stays bounded: the k samples go through the decoder ``chunk`` at a time."""
    x = _check_x(vae, x)
    k, N = check_positive_int("k", k), x.shape[0]
    rng = np.random.default_rng(seed)
    chunk = chunk or max(1, (1 << 20) // max(1, N * vae.input_dim))
    log_sum_w = np.full(N, -np.inf)                             # log sum_i w_i
    log_sum_w2 = np.full(N, -np.inf)                            # log sum_i w_i^2
    for done in range(0, k, chunk):
        kc = min(chunk, k - done)
        z = rng.standard_normal((kc, vae.latent_dim))           # z_i ~ p(z)   (kc, Z)
        zz = np.repeat(z, N, axis=0)                            # (kc N, Z): each z with each x
        log_w = log_px_given_z(vae, np.tile(x, (kc, 1)), zz).reshape(kc, N)   # log p(x|z_i)
        log_sum_w = np.logaddexp(log_sum_w, _log_sum_exp(log_w))
        log_sum_w2 = np.logaddexp(log_sum_w2, _log_sum_exp(2 * log_w))
    estimate = log_sum_w - np.log(k)
    if return_ess:
        return estimate, np.exp(2 * log_sum_w - log_sum_w2)
    return estimate


def estimates_versus_k(vae, x, ks, seed=0):
    """Naive (1) and importance-sampled (2) estimates of log p(x) for each sample count k.

    Returns a dict of (len(ks), N) arrays: ``naive``, ``naive_ess`` (the effective sample
    size of the naive weights) and ``importance`` (``VAE.log_likelihood``), plus ``k``."""
    naive, ess, importance = [], [], []
    for i, k in enumerate(ks):
        est, n_eff = naive_log_likelihood(vae, x, k=int(k), seed=[seed, 0, i], return_ess=True)
        naive.append(est)
        ess.append(n_eff)
        importance.append(vae.log_likelihood(x, k=int(k), seed=[seed, 1, i]))
    return {"k": np.asarray(ks), "naive": np.array(naive), "naive_ess": np.array(ess),
            "importance": np.array(importance)}


def _log_sum_exp(a):
    m = np.max(a, axis=0)
    m = np.where(np.isfinite(m), m, 0.0)        # as in log_mean_exp
    with np.errstate(divide="ignore"):
        return m + np.log(np.sum(np.exp(a - m), axis=0))


def grid_log_likelihood(vae, x, n=201, limit=6.0):
    """log p(x) by the midpoint rule, eq. (3), on a grid of n^Z cells over [-limit, limit]^Z.

    Only for latent_dim <= 2: the grid has n^Z points, which is the point of lesson 5 -- an
    integral over z by brute force costs exponentially many decoder calls in Z. The prior
    mass outside the box (about 4e-9 for limit = 6, Z = 2) is left out.
    Returns: (N,) estimates."""
    x = _check_x(vae, x)
    Z = vae.latent_dim
    if Z > 2:
        raise TinyVAEError(f"a quadrature grid over z needs latent_dim <= 2 (n^Z points); this VAE has {Z}")
    edges = np.linspace(-limit, limit, n + 1)
    centres = (edges[:-1] + edges[1:]) / 2                      # (n,)
    cell = (edges[1] - edges[0]) ** Z                           # the area dA of one cell
    grid = np.stack(np.meshgrid(*[centres] * Z, indexing="ij"), axis=-1).reshape(-1, Z)   # (n^Z, Z)
    log_pz = log_standard_normal(grid)                          # (G,)
    out, log_px_z = np.empty(x.shape[0]), np.empty(grid.shape[0])
    chunk = max(1, (1 << 20) // vae.input_dim)                  # about 2^20 decoded values at a time
    for i, xi in enumerate(x):
        for g in range(0, grid.shape[0], chunk):                # log p(x|z) at every grid point  (G,)
            zg = grid[g:g + chunk]
            log_px_z[g:g + zg.shape[0]] = log_px_given_z(vae, np.broadcast_to(xi, (zg.shape[0], xi.size)), zg)
        out[i] = _log_sum_exp(log_px_z + log_pz) + np.log(cell)
    return out


# --------------------------------------------------------------------------------------------
# lesson 6: the three terms of the ELBO at samples from q

def elbo_terms(vae, x, eps):
    """The log densities inside the ELBO's three expectations, eq. (4), at z = mu + sigma eps.

    Inputs: x (N, D); eps (S, N, Z) standard normal: S samples of z for each example.
    Returns: dict of (S, N) float64 arrays ``log_px_z`` = log p(x|z), ``log_pz`` = log p(z),
    ``log_qz`` = log q(z|x). Their means over S estimate the three expectations;
    ``log_qz - log_pz`` averages to KL(q || p(z)), eq. (5).
    Memory stays bounded: the decoder takes the S samples a few at a time (about 2^20 values)."""
    x = _check_x(vae, x)
    eps = np.asarray(eps, dtype=np.float64)
    N, Z = x.shape[0], vae.latent_dim
    if eps.ndim != 3 or eps.shape[1:] != (N, Z):
        raise TinyVAEError(f"eps must have shape (S, {N}, {Z}), got {eps.shape}")
    S = eps.shape[0]
    if S == 0:
        raise TinyVAEError(f"eps holds no samples (shape {eps.shape}); give at least one, (S, {N}, {Z})")
    mu, logvar = (a.astype(np.float64) for a in vae.encode(x))  # (N, Z) each
    z = mu + np.exp(0.5 * logvar) * eps                         # (S, N, Z)
    log_px_z = np.empty((S, N))
    chunk = max(1, (1 << 20) // max(1, N * vae.input_dim))     # about 2^20 decoded values at a time
    for s in range(0, S, chunk):
        zs = z[s:s + chunk]                                     # (chunk, N, Z)
        log_px_z[s:s + chunk] = log_px_given_z(vae, np.tile(x, (zs.shape[0], 1)),
                                               zs.reshape(-1, Z)).reshape(zs.shape[:2])
    return {"log_px_z": log_px_z, "log_pz": log_standard_normal(z), "log_qz": log_normal(z, mu, logvar)}


def mean_and_standard_error(samples, axis=0):
    """The sample mean and its standard error std / sqrt(S) along ``axis``."""
    samples = np.asarray(samples, dtype=np.float64)
    S = samples.shape[axis]
    return samples.mean(axis=axis), samples.std(axis=axis, ddof=1) / np.sqrt(S)


# --------------------------------------------------------------------------------------------
# lesson 7: objectives f(z) and the two gradient estimators

class Quadratic:
    """f(z) = -1/2 sum_j c_j (z_j - a_j)^2, for which the gradient of E_q[f] is known exactly:

        E_q[f] = -1/2 sum_j c_j ((mu_j - a_j)^2 + sigma_j^2)
        dE/dmu = -c (mu - a),    dE/dlogvar = -c sigma^2 / 2."""

    def __init__(self, a, c=1.0):
        self.a = np.atleast_1d(np.array(a, dtype=np.float64))             # copies of a and c
        self.c = np.broadcast_to(np.asarray(c, dtype=np.float64), self.a.shape).copy()

    def value(self, z):
        return -0.5 * np.sum(self.c * (z - self.a) ** 2, axis=-1)          # (S,)

    def grad(self, z):
        return -self.c * (z - self.a)                                       # (S, Z)

    def expected_gradient(self, mu, logvar):
        """The exact gradient of E_q[f] with respect to (mu, logvar): two (Z,) arrays."""
        return -self.c * (mu - self.a), -self.c * np.exp(logvar) / 2


class DecoderLogLikelihood:
    """f(z) = log p(x|z) for one fixed example x under a VAE's decoder, with df/dz by backprop.

    ``grad`` runs the decoder's backward pass, which overwrites the VAE's gradient buffers
    (``vae.grads``), never its parameters."""

    def __init__(self, vae, x):
        self.vae = vae
        self.x = _check_x(vae, x)[0].astype(vae.dtype)                     # (D,)

    def value(self, z):
        z = self.vae._input(z, "z", dim=self.vae.latent_dim)                # (S, Z), at least one row
        out, chunk = np.empty(z.shape[0]), self._chunk()                    # memory: a chunk of rows at a time
        for s in range(0, z.shape[0], chunk):
            zs = z[s:s + chunk]
            out[s:s + zs.shape[0]] = log_px_given_z(self.vae, np.broadcast_to(self.x, (zs.shape[0], self.x.size)), zs)
        return out

    def grad(self, z):
        vae = self.vae
        z = np.ascontiguousarray(vae._input(z, "z", dim=vae.latent_dim))   # (S, Z), at least one row
        out, chunk = np.empty(z.shape), self._chunk()
        for s in range(0, z.shape[0], chunk):
            o, cache = vae.decoder.forward(z[s:s + chunk])                  # (chunk, D)
            xs = np.ascontiguousarray(np.broadcast_to(self.x, o.shape))
            # d log p / d o (scale -1 of the decoder's d(-log p)/d o): x - sigmoid(l) for the
            # Bernoulli decoder, (x - o) / sigma2 for the Gaussian
            _, do = vae._reconstruction(o, xs, -1.0)
            out[s:s + o.shape[0]] = vae.decoder.backward(do, cache)
        return out

    def _chunk(self):
        return max(1, (1 << 20) // self.x.size)                            # about 2^20 decoded values


ESTIMATORS = ("reparameterization", "score", "score_baseline")


def reparameterization_gradient(f, mu, logvar, eps):
    """Per-sample reparameterization estimates of d E_q[f] / d(mu, logvar), eq. (6).

    Inputs: f with ``grad(z)``; mu, logvar (Z,); eps (S, Z).
    Returns: g_mu, g_logvar, both (S, Z); their means over S are the S-sample estimates."""
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps                                        # (S, Z)
    dz = f.grad(z)                                              # f'(z)  (S, Z)
    return dz, dz * eps * sigma / 2                             # dz/dmu = 1, dz/dlogvar = eps sigma / 2


def score_function_gradient(f, mu, logvar, eps, baseline=0.0):
    """Per-sample score-function (REINFORCE) estimates of d E_q[f] / d(mu, logvar), eq. (7).

    d log q(z) / d mu = (z - mu) / sigma^2 = eps / sigma;  d log q / d logvar = (eps^2 - 1) / 2.
    ``baseline`` b is subtracted from f(z): any b independent of z keeps the estimate unbiased.
    Returns: g_mu, g_logvar, both (S, Z)."""
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps                                        # (S, Z)
    w = (f.value(z) - baseline)[:, None]                        # (S, 1)
    return w * eps / sigma, w * (eps**2 - 1) / 2


def per_sample_gradients(f, mu, logvar, eps, method="reparameterization"):
    """One-sample gradient estimates by ``method`` (see ESTIMATORS) as (S, 2Z): [g_mu, g_logvar].

    ``score_baseline`` is the score function with the baseline b = f(mu)."""
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    logvar = np.atleast_1d(np.asarray(logvar, dtype=np.float64))
    eps = np.asarray(eps, dtype=np.float64)
    if method == "reparameterization":
        g = reparameterization_gradient(f, mu, logvar, eps)
    elif method == "score":
        g = score_function_gradient(f, mu, logvar, eps)
    elif method == "score_baseline":
        g = score_function_gradient(f, mu, logvar, eps, baseline=float(f.value(mu[None, :])[0]))
    else:
        raise TinyVAEError(f"unknown gradient estimator {method!r}: expected one of {', '.join(ESTIMATORS)}")
    return np.concatenate(g, axis=1)


def gradient_estimates(f, mu, logvar, n, repeats, method="reparameterization", seed=0):
    """``repeats`` independent n-sample estimates of the gradient, (repeats, 2Z).

    Each row is the mean of n one-sample estimates; the spread of the rows over repeats is
    the estimator's standard deviation at n samples (it falls like 1/sqrt(n))."""
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    eps = np.random.default_rng(seed).standard_normal((repeats * n, mu.size))
    g = per_sample_gradients(f, mu, logvar, eps, method)          # (repeats n, 2Z)
    return g.reshape(repeats, n, -1).mean(axis=1)


def gradient_std_curve(f, mu, logvar, ns, repeats=200, methods=ESTIMATORS, seed=0):
    """For each method and each n in ``ns``: the mean and the per-coordinate standard deviation
    of ``repeats`` n-sample estimates. Returns {method: {"mean": (len(ns), 2Z), "std": (len(ns), 2Z)}}."""
    out = {}
    for m, method in enumerate(methods):
        means, stds = [], []
        for i, n in enumerate(ns):
            est = gradient_estimates(f, mu, logvar, int(n), repeats, method, seed=[seed, m, i])
            means.append(est.mean(axis=0))
            stds.append(est.std(axis=0, ddof=1))
        out[method] = {"mean": np.array(means), "std": np.array(stds)}
    return out


def gradient_variance_setting(name, f, mu, logvar, ns, repeats=200, n_one_sample=20000,
                              methods=ESTIMATORS, exact=None, seed=0):
    """Everything :func:`tinyvae.vae_plots.plot_gradient_variance` draws for one objective f.

    ``curve`` is :func:`gradient_std_curve` over the sample counts ``ns``; ``one_sample`` holds
    n_one_sample one-sample estimates (S, 2Z) per method, all at the same eps (so the methods
    are compared on the same draws of z); ``exact`` is the true gradient (2Z,) if known.
    Lesson 7 and the ``gradient_variance`` figure both call this, so they show the same numbers."""
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    logvar = np.atleast_1d(np.asarray(logvar, dtype=np.float64))
    eps = np.random.default_rng([seed, 7]).standard_normal((int(n_one_sample), mu.size))   # (S, Z)
    return {"name": name, "ns": np.asarray(ns),
            "curve": gradient_std_curve(f, mu, logvar, ns, repeats, methods, seed=seed),
            "one_sample": {m: per_sample_gradients(f, mu, logvar, eps, m) for m in methods},
            "exact": None if exact is None else np.asarray(exact, dtype=np.float64)}


__all__ = ["log_normal", "log_standard_normal", "log_mean_exp", "effective_sample_size",
           "log_px_given_z", "naive_log_likelihood", "estimates_versus_k", "grid_log_likelihood", "elbo_terms",
           "mean_and_standard_error", "Quadratic", "DecoderLogLikelihood", "ESTIMATORS",
           "reparameterization_gradient", "score_function_gradient", "per_sample_gradients",
           "gradient_estimates", "gradient_std_curve", "gradient_variance_setting"]
