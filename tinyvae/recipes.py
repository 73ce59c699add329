"""Training recipes the VAE lessons (5-8) and their figures share.

A lesson and the figure drawn from it call the same function here, so both train the same
model the same way and report the same numbers.

* :func:`linear_gaussian_vae`: probabilistic PCA as a VAE (``hidden_dims=()``, a Gaussian
  decoder with a learned sigma2), where log p(x), the posterior and the ELBO are exact
  (:mod:`tinyvae.linear_gaussian`).
* :func:`beta_sweep`: one VAE per beta (Higgins et al. 2017's beta-VAE loss rec + beta KL),
  measured by the KL of each latent dimension and the number of active units: as beta grows,
  more dimensions collapse to the prior, q(z_j|x) = p(z_j) (posterior collapse).
* :func:`refit_encoder`: lesson 6's gap closing -- a fresh encoder fitted by the ELBO to a
  frozen linear-Gaussian decoder, with the exact log p(x), ELBO and KL(q || p(z|x)) recorded.
* :func:`small_vae`: the small Bernoulli VAE on digits whose decoder gives lesson 7 a real
  objective f(z) = log p(x|z) for the gradient estimators.
* :func:`elbo_gap_study`, :func:`gradient_variance_study`: the numbers lessons 6 and 7 plot, the
  same in the lesson and in its figure.
"""
import contextlib

import numpy as np

from .train import fit
from .vae import VAE


@contextlib.contextmanager
def one_blas_thread():
    """Run the block with BLAS limited to one thread.

    The matrices of these small models (64 to 400 wide, batches of 64) are too small for BLAS
    threads to pay off: on two busy cores, the spinning threads made training 4-7x slower."""
    try:
        from threadpoolctl import threadpool_limits      # a declared dependency
    except ImportError:                                  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def linear_gaussian_vae(x, latent_dim, epochs=30, lr=1e-2, batch_size=64, seed=0):
    """A linear-Gaussian VAE, p(x|z) = N(x; z W + b, sigma2 I) with sigma2 learned, trained on x.

    float64, so the exact identities of :mod:`tinyvae.linear_gaussian` hold to 1e-8 and beyond."""
    vae = VAE(x.shape[1], hidden_dims=(), latent_dim=latent_dim, likelihood="gaussian",
              learn_sigma2=True, dtype="float64", seed=seed)
    with one_blas_thread():
        fit(vae, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return vae


def beta_sweep(x_train, betas, x_eval=None, latent_dim=8, hidden_dims=(128,), epochs=60,
               batch_size=64, lr=3e-3, seed=0, threshold=0.01):
    """Train one Bernoulli VAE per beta (same seed, same data order) and measure collapse.

    Inputs: x_train (N, D) in [0, 1]; betas, a sequence of floats; x_eval the data to measure
    on (default x_train). Returns a dict:

        betas          (B,)
        kl_per_dim     (B, Z)  mean over x_eval of KL(q(z_j|x) || N(0, 1)), per dimension
        activity       (B, Z)  Var_x[mu_j(x)]  (Burda et al. 2015)
        active_units   (B,)    dimensions with activity above ``threshold``
        rec, kl        (B,)    mean reconstruction term -log p(x|z) and total KL on x_eval
        models         the B trained VAEs
    """
    x_eval = x_train if x_eval is None else x_eval
    out = {k: [] for k in ("kl_per_dim", "activity", "active_units", "rec", "kl", "models")}
    for beta in betas:
        vae = VAE(x_train.shape[1], hidden_dims=hidden_dims, latent_dim=latent_dim, beta=beta, seed=seed)
        with one_blas_thread():
            fit(vae, x_train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
        terms = vae.evaluate(x_eval)
        out["kl_per_dim"].append(vae.kl_per_dimension(x_eval))
        out["activity"].append(vae.latent_activity(x_eval))
        out["active_units"].append(vae.active_units(x_eval, threshold))
        out["rec"].append(terms["rec"])
        out["kl"].append(terms["kl"])
        out["models"].append(vae)
    result = {k: (v if k == "models" else np.array(v)) for k, v in out.items()}
    result["betas"] = np.asarray(betas, dtype=np.float64)
    return result


def fresh_encoder(vae, seed=1):
    """A copy of ``vae`` with the same decoder (and sigma2) and a newly initialised encoder."""
    student = VAE(**{**vae.config, "seed": int(seed)})          # a fresh encoder ...
    for name, value in vae.params.items():                     # ... under the same decoder
        if not name.startswith("enc."):
            student.params[name][...] = value
    return student


def refit_encoder(vae, x_train, x_eval=None, steps=600, batch_size=64, lr=3e-2, seed=1, every=10):
    """Fit a fresh encoder to the frozen decoder of a linear-Gaussian VAE by maximising the ELBO.

    A copy of ``vae`` gets a newly initialised encoder (:func:`fresh_encoder`); its decoder and
    sigma2 stay fixed, so log p(x) stays fixed, and only q(z|x) moves. Adam runs ``steps``
    steps on the one-sample loss -ELBO of minibatches of x_train (eps ~ N(0, I) fresh each
    step), its step size decaying linearly from ``lr`` to lr/100 (with a constant step the
    noise of the one-sample gradient keeps q jittering around the optimum). Before the first step and every ``every`` steps, the exact means over x_eval
    (default x_train) of log p(x), the ELBO and KL(q(z|x) || p(z|x)) are recorded
    (:mod:`tinyvae.linear_gaussian`): the ELBO climbs towards log p(x) and the KL gap shrinks.

    Returns (student, history): the VAE with the fitted encoder, and a dict of (T,) arrays
    ``step``, ``log_px``, ``elbo``, ``kl``."""
    from . import linear_gaussian as lg
    from .optim import Adam

    x_train = np.asarray(x_train, dtype=np.float64)
    x_eval = x_train if x_eval is None else np.asarray(x_eval, dtype=np.float64)
    student = fresh_encoder(vae, seed)
    frozen = [g for name, g in student.grads.items() if not name.startswith("enc.")]
    rng = np.random.default_rng([int(seed), 4])
    opt = Adam(lr)
    log_px = lg.log_marginal_likelihood(student, x_eval).mean()
    history = {"step": [], "log_px": [], "elbo": [], "kl": []}

    def record(step):
        history["step"].append(step)
        history["log_px"].append(log_px)
        history["elbo"].append(lg.expected_elbo(student, x_eval).mean())
        history["kl"].append(lg.kl_to_posterior(student, x_eval).mean())

    with one_blas_thread():
        record(0)
        for step in range(1, int(steps) + 1):
            batch = x_train[rng.integers(0, len(x_train), size=batch_size)]        # (B, D)
            eps = rng.standard_normal((batch_size, student.latent_dim))             # (B, Z)
            student.loss_and_grads(batch, eps)
            opt.lr = lr * max(0.01, 1 - (step - 1) / steps)
            for g in frozen:                                   # Adam never moves a parameter
                g[...] = 0                                     # whose gradient is always zero
            opt.step(student)
            if step % every == 0 or step == steps:
                record(step)
    return student, {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}


def small_vae(x, latent_dim=2, hidden_dims=(64,), epochs=30, batch_size=64, lr=3e-3, seed=0,
              activation="tanh"):
    """A small Bernoulli VAE (float64) trained on x in [0, 1], e.g. the 8x8 digits.

    Lesson 7 uses its decoder as the objective f(z) = log p(x|z) of the gradient estimators
    (:class:`tinyvae.estimators.DecoderLogLikelihood`); float64 so the gradient checks apply."""
    vae = VAE(x.shape[1], hidden_dims=hidden_dims, latent_dim=latent_dim, activation=activation,
              seed=seed, dtype="float64")
    with one_blas_thread():
        fit(vae, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return vae


def copy_vae(vae):
    """A new VAE with the same configuration and a copy of ``vae``'s parameters."""
    twin = VAE(**vae.config)
    twin.flat[...] = vae.flat
    return twin


def elbo_gap_study(vae, x_train, x, n_kl_samples=2000, refit_steps=300, seed=0):
    """Lesson 6's numbers (and the ``elbo_gap`` figure's) for a linear-Gaussian VAE and images x.

    Returns a dict: the exact ``log_px`` (N,) and ``elbo``, {"trained encoder": (N,), "fresh
    encoder": (N,)} (the latter the untrained encoder :func:`refit_encoder` starts from, its gap
    wide); ``kl_samples`` (S,), the values
    log q(z|x) - log p(z) at z ~ q(z|x) for the first image, whose mean estimates KL(q || p(z)),
    and ``kl_closed``, that KL in closed form; ``history`` from :func:`refit_encoder` (a fresh
    encoder fitted for ``refit_steps`` steps); ``best_kl``, the mean KL(q || p(z|x)) of the best
    diagonal q (:func:`tinyvae.linear_gaussian.fit_encoder_to_posterior`)."""
    from . import estimators
    from . import linear_gaussian as lg

    x = np.asarray(x, dtype=np.float64)
    eps = np.random.default_rng(seed).standard_normal((int(n_kl_samples), 1, vae.latent_dim))   # (S, 1, Z)
    terms = estimators.elbo_terms(vae, x[:1], eps)                        # (S, 1) each
    mu, logvar = vae.encode(x[:1])                                        # (1, Z) each
    _, history = refit_encoder(vae, x_train, x, steps=refit_steps, seed=seed + 1)
    best = lg.fit_encoder_to_posterior(copy_vae(vae), x)
    elbo = {"trained encoder": lg.expected_elbo(vae, x),
            "fresh encoder": lg.expected_elbo(fresh_encoder(vae, seed + 1), x)}
    return {"log_px": lg.log_marginal_likelihood(vae, x), "elbo": elbo,
            "kl_samples": (terms["log_qz"] - terms["log_pz"])[:, 0],
            "kl_closed": float(0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar)),
            "history": history, "best_kl": float(lg.kl_to_posterior(best, x).mean())}


# lesson 7's quadratic objective f(z) = -1/2 sum_j c_j (z_j - a_j)^2 and the q = N(mu, exp(logvar)) it is averaged under
QUADRATIC = {"a": (2.0, -1.0), "c": (1.0, 4.0), "mu": (0.5, 0.0), "logvar": (float(np.log(0.5)), float(np.log(0.2)))}


def gradient_variance_study(vae, x0, quick=False):
    """Lesson 7's two objectives (and the ``gradient_variance`` figure's), each measured by
    :func:`tinyvae.estimators.gradient_variance_setting`: the quadratic ``QUADRATIC`` (exact
    gradient known) and f(z) = log p(x0|z) under ``vae``'s decoder at the encoder's q(z|x0).

    Returns the list of two settings for :func:`tinyvae.vae_plots.plot_gradient_variance`."""
    from . import estimators

    ns = [1, 4, 16, 64] if quick else [1, 4, 16, 64, 256]
    repeats, n_one = (400, 20000) if quick else (1000, 100000)     # one-sample score estimates are heavy-tailed
    f = estimators.Quadratic(QUADRATIC["a"], QUADRATIC["c"])
    mu, logvar = np.array(QUADRATIC["mu"]), np.array(QUADRATIC["logvar"])
    exact = np.concatenate(f.expected_gradient(mu, logvar))               # (2Z,)
    with one_blas_thread():
        quad = estimators.gradient_variance_setting("quadratic f(z)", f, mu, logvar, ns, repeats, n_one,
                                                    exact=exact, seed=1)
        mu, logvar = (a[0].astype(np.float64) for a in vae.encode(x0[:1]))    # (Z,) each
        dec = estimators.gradient_variance_setting("f(z) = log p(x|z), trained decoder",
                                                   estimators.DecoderLogLikelihood(vae, x0[:1]),
                                                   mu, logvar, ns, repeats, n_one, seed=2)
    return [quad, dec]


__all__ = ["one_blas_thread", "linear_gaussian_vae", "beta_sweep", "fresh_encoder", "refit_encoder", "small_vae",
           "copy_vae",
           "elbo_gap_study", "QUADRATIC", "gradient_variance_study"]
