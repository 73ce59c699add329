"""Figures of lessons 5-7 (latent-variable model, the ELBO, the reparameterization trick); registered with :func:`tinyvae.figures.figure`.

Each figure repeats its lesson's computation with the same library calls and settings (quick
mode = the lesson's quick mode), so the PNG and the lesson show the same numbers:

    naive_monte_carlo    lesson 5: naive Monte Carlo vs importance sampling for log p(x)
    elbo_gap             lesson 6: log p(x) = ELBO + KL(q || p(z|x)), exact, on probabilistic PCA
    gradient_variance    lesson 7: reparameterization vs score-function gradient estimators
"""
from . import estimators, recipes
from . import linear_gaussian as lg
from .data import load_dataset
from .figures import figure
from .vae_plots import plot_elbo_gap, plot_gradient_variance, plot_likelihood_estimates


def _digits(ctx):
    return ctx.get("figures_elbo.digits", lambda: load_dataset("digits"))


def _linear_vae(ctx, latent_dim):
    """The linear-Gaussian VAE of lessons 5 and 6 (same data, epochs and seed)."""
    epochs = 20 if ctx.quick else 60
    return ctx.get(f"figures_elbo.linear_vae.{latent_dim}",
                   lambda: recipes.linear_gaussian_vae(_digits(ctx).x_train, latent_dim=latent_dim, epochs=epochs))


def _test_images(ctx):
    return _digits(ctx).x_test[:10 if ctx.quick else 50]                 # (n_test, 64)


@figure("naive_monte_carlo", "Estimating log p(x) of the linear-Gaussian VAE (probabilistic PCA) on digits by "
        "sampling: naive Monte Carlo from the prior misses by nats once the latent space has 10-20 dimensions "
        "(effective sample size near 1); importance sampling from q(z|x) does not (lesson 5).")
def fig_naive_monte_carlo(ctx):
    x = _test_images(ctx)
    ks = [1, 10, 100, 1000, 10000] if ctx.quick else [1, 10, 100, 1000, 10000, 100000]
    results = {}
    with recipes.one_blas_thread():
        for Z in (2, 10, 20):
            vae = _linear_vae(ctx, Z)
            results[f"Z = {Z}"] = (estimators.estimates_versus_k(vae, x, ks, seed=Z),
                                   lg.log_marginal_likelihood(vae, x))
    return plot_likelihood_estimates(results)


@figure("elbo_gap", "log p(x) = ELBO + KL(q(z|x) || p(z|x)), every term exact, on the linear-Gaussian VAE "
        "(digits): the ELBO lies below log p(x) by the KL to the true posterior; the KL to the prior by "
        "Monte Carlo against its closed form; the gap closing as a fresh encoder is fitted (lesson 6).")
def fig_elbo_gap(ctx):
    d = recipes.elbo_gap_study(_linear_vae(ctx, 2), _digits(ctx).x_train, _test_images(ctx),
                               n_kl_samples=2000 if ctx.quick else 20000,
                               refit_steps=300 if ctx.quick else 1000)
    return plot_elbo_gap(d["log_px"], d["elbo"], d["kl_samples"], d["kl_closed"],
                         history=d["history"], best_kl=d["best_kl"])


@figure("gradient_variance", "Two unbiased estimators of the gradient of E_q[f(z)] with respect to q's mean and "
        "log-variance: the reparameterization estimator has a far smaller spread than the score-function "
        "(REINFORCE) estimator, with or without a baseline; all fall like 1/sqrt(n) (lesson 7).")
def fig_gradient_variance(ctx):
    ds = _digits(ctx)
    vae = ctx.get("figures_elbo.small_vae", lambda: recipes.small_vae(ds.x_train, epochs=30 if ctx.quick else 60))
    return plot_gradient_variance(recipes.gradient_variance_study(vae, ds.x_test[:1], quick=ctx.quick))
