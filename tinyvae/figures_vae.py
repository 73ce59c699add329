"""Figures of lesson 8 (training a VAE); registered with :func:`tinyvae.figures.figure`.

    FASHION_MNIST_CLASSES, class_names   the names of the labels, for legends
    pictures_dataset                     Fashion-MNIST for the pictures, digits when it is absent
    architecture                         "784-400-20-400-784": a VAE's layer widths
    iwae_versus_k                        the importance-weighted bound for several k, and the ELBO

Lesson 8 calls the same functions (and the plotting functions of :mod:`tinyvae.plots` and
:mod:`tinyvae.vae_plots`), so its numbers and these figures agree.

The models of a full run: a 784-400-20-400-784 Bernoulli VAE (ReLU, Adam), the recipe of
PyTorch's VAE example, on Fashion-MNIST for reconstructions, samples, loss curves and the IWAE
bound (Kingma & Welling 2013 used 500 tanh hidden units for MNIST, and Adagrad); a
784-512-2-512-784 VAE for the 2-D manifold and the latent space; 64-128-8 VAEs on the digits
for the beta sweep. A quick run uses small VAEs on the digits throughout. Every model is
trained once per run (``ctx.get``) and shared by the figures that show it.

All training runs with BLAS on one thread (:func:`tinyvae.recipes.one_blas_thread`), the big
model too: on the shared 2-core machine one epoch of 784-400-20 on 60000 images took 3.9-9 s
with one thread and 31-43 s with two (the two threads spin against each other and the other
jobs, 20 s of CPU against 3-4 s).
"""
import numpy as np

from .data import load_dataset
from .errors import TinyVAEError
from .figures import figure
from .plots import plot_history, plot_latent_manifold, plot_latent_space, plot_reconstructions, plot_samples
from .recipes import beta_sweep, one_blas_thread
from .train import fit
from .vae import VAE
from .vae_plots import plot_iwae_bound, plot_kl_per_dimension_beta

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
PRETTY_NAMES = {"digits": "digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def class_names(ds):
    """The names of the labels 0, 1, ... of a dataset, or None when the label is the name
    (digits, MNIST) or there are no labels."""
    if ds.name == "fashion-mnist":
        return FASHION_MNIST_CLASSES
    return None


def pictures_dataset(download=True):
    """Fashion-MNIST (28x28) for the pictures of a VAE, downloaded if need be (with a progress
    bar) unless ``download=False``; the 8x8 digits when it cannot be had.

    Returns (dataset, note): ``note`` is "" or says that digits stand in for Fashion-MNIST,
    for the figures' titles."""
    try:
        return load_dataset("fashion-mnist", download=download, progress=download), ""
    except TinyVAEError:
        return load_dataset("digits"), " (Fashion-MNIST not found: digits instead)"


def pretty_name(ds):
    return PRETTY_NAMES.get(ds.name, ds.name)


def architecture(vae):
    """The layer widths of a VAE, encoder then decoder: "784-400-20-400-784"."""
    c = vae.config
    return "-".join(str(w) for w in (c["input_dim"], *c["hidden_dims"], c["latent_dim"],
                                     *c["decoder_hidden_dims"], c["input_dim"]))


def iwae_versus_k(vae, x, ks, seed=0, elbo_draws=500):
    """The importance-weighted estimate of log p(x) (Burda et al. 2015) for each k, and the ELBO.

        IWAE_k(x) = log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

    E[IWAE_k] grows with k towards log p(x); E[IWAE_1] is the ELBO. Every k uses the same seed
    (common random numbers: the first samples are shared), so the curve is smooth.
    Inputs: x (N, D), ks a sequence of ints. Returns a dict: ``ks`` (K,), ``iwae`` (K, N),
    ``elbo`` (N,), the one-sample ELBO of :meth:`VAE.elbo` (analytic KL) averaged over
    ``elbo_draws`` draws of eps, and ``elbo_k`` (K, N), the ELBO estimated from the same k draws
    as IWAE_k (the mean of their log-weights): never above IWAE_k, and equal to it at k = 1."""
    ks = np.asarray([int(k) for k in ks])
    pairs = [vae.log_likelihood(x, k=int(k), seed=seed, return_elbo=True) for k in ks]
    iwae = np.stack([p[0] for p in pairs])                                               # (K, N)
    elbo_k = np.stack([p[1] for p in pairs])                                             # (K, N)
    elbo = np.mean([vae.elbo(x, rng=np.random.default_rng([seed, 1, s])) for s in range(elbo_draws)],
                   axis=0)                                                               # (N,)
    return {"ks": ks, "iwae": iwae, "elbo": elbo, "elbo_k": elbo_k}


# --------------------------------------------------------------------------------------------
# the models of a figures run, each trained once (ctx.get)

def _train(x_train, x_val, hidden_dims, latent_dim, epochs, lr, batch_size, seed):
    vae = VAE(x_train.shape[1], hidden_dims=hidden_dims, latent_dim=latent_dim, seed=seed)
    with one_blas_thread():
        history = fit(vae, x_train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      x_val=x_val, progress=False)
    return vae, history


def _data(ctx):
    """(dataset, note) for the pictures: digits in a quick run, else Fashion-MNIST if present."""
    if ctx.quick:
        return ctx.get("figures_vae.digits", lambda: (load_dataset("digits"), ""))
    return ctx.get("figures_vae.pictures", pictures_dataset)


def _main_vae(ctx):
    """(vae, history): the VAE of the reconstructions, samples, loss curves and IWAE bound."""
    def make():
        ds, _ = _data(ctx)
        if ds.name == "digits":
            epochs = 30 if ctx.quick else 150
            return _train(ds.x_train, ds.x_test, (128,), 8, epochs, 3e-3, 64, ctx.seed)
        return _train(ds.x_train, ds.x_test, (400,), 20, 15, 1e-3, 128, ctx.seed)
    return ctx.get("figures_vae.main", make)


def _vae_2d(ctx):
    """(vae, history): a VAE with a 2-D latent space, for the manifold and the latent scatter."""
    def make():
        ds, _ = _data(ctx)
        if ds.name == "digits":
            epochs = 40 if ctx.quick else 200
            return _train(ds.x_train, ds.x_test, (128,), 2, epochs, 3e-3, 64, ctx.seed)
        return _train(ds.x_train, ds.x_test, (512,), 2, 15, 1e-3, 128, ctx.seed)
    return ctx.get("figures_vae.vae_2d", make)


def _on(ds, note, vae):
    return f"VAE {architecture(vae)} on {pretty_name(ds)}{note}"


# --------------------------------------------------------------------------------------------
# the registered figures

@figure("reconstructions", "Test images above their VAE reconstructions, the decoded mean at z = mu(x) (lesson 8).")
def fig_reconstructions(ctx):
    ds, note = _data(ctx)
    vae, _ = _main_vae(ctx)
    return plot_reconstructions(vae, ds.x_test, ds.image_shape, n=10, rows=2,
                                title=f"Reconstructions: {_on(ds, note, vae)}")


@figure("samples", "New images from a trained VAE: z ~ N(0, I) through the decoder, shown as the mean of p(x|z) (lesson 8).")
def fig_samples(ctx):
    ds, note = _data(ctx)
    vae, _ = _main_vae(ctx)
    return plot_samples(vae, ds.image_shape, n=64, seed=ctx.seed,
                        title=f"Samples from the prior: {_on(ds, note, vae)}")


@figure("latent_manifold", "The learned 2-D manifold: the decoder's mean on a grid of z through the prior's quantiles (Kingma & Welling fig. 4; lesson 8).")
def fig_latent_manifold(ctx):
    ds, note = _data(ctx)
    vae, _ = _vae_2d(ctx)
    n = 20 if ds.image_shape[0] >= 20 else 15
    return plot_latent_manifold(vae, ds.image_shape, n=n, title=f"The learned manifold: {_on(ds, note, vae)}")


@figure("latent_by_class", "Posterior means mu(x) of the test set in a 2-D latent space, coloured by class: the classes cluster without ever being shown to the VAE (lesson 8).")
def fig_latent_by_class(ctx):
    ds, note = _data(ctx)
    vae, _ = _vae_2d(ctx)
    return plot_latent_space(vae, ds.x_test, ds.y_test, class_names=class_names(ds),
                             title=f"Latent space by class (labels unseen in training): {_on(ds, note, vae)}")


@figure("training_curves", "Training and validation loss of a VAE: -ELBO and its two terms, reconstruction -log p(x|z) and KL(q(z|x) || p(z)), apart (lesson 8).")
def fig_training_curves(ctx):
    ds, note = _data(ctx)
    vae, history = _main_vae(ctx)
    return plot_history(history, title=f"Training a {_on(ds, note, vae)}: -ELBO = reconstruction + KL "
                                       f"(train solid, test dashed)", val_label="test")


@figure("kl_per_dimension_beta", "beta-VAE on the digits: KL per latent dimension, active units and the two loss terms as beta grows; large beta collapses dimensions to the prior (lesson 8).")
def fig_kl_per_dimension_beta(ctx):
    def make():
        ds = load_dataset("digits")
        if ctx.quick:
            return beta_sweep(ds.x_train, (0.5, 2, 8), x_eval=ds.x_test, epochs=20, seed=ctx.seed)
        return beta_sweep(ds.x_train, (0.25, 0.5, 1, 2, 4, 8), x_eval=ds.x_test, epochs=60, seed=ctx.seed)
    sweep = ctx.get("figures_vae.beta_sweep", make)
    Z = sweep["kl_per_dim"].shape[1]
    return plot_kl_per_dimension_beta(sweep, title=f"beta-VAE 64-128-{Z} on the digits: posterior collapse "
                                                   "as beta grows (loss = rec + beta KL)")


@figure("iwae_bound", "The importance-weighted bound IWAE_k on log p(x) of a trained VAE rises with k above the ELBO, and above the ELBO estimated from the same k draws, which it equals at k = 1 (Burda et al. 2015; lesson 8).")
def fig_iwae_bound(ctx):
    ds, note = _data(ctx)
    vae, _ = _main_vae(ctx)

    def make():
        n, ks = (100, (1, 3, 10, 30, 100, 300)) if ctx.quick else (200, (1, 3, 10, 30, 100, 300, 1000))
        with one_blas_thread():
            return iwae_versus_k(vae, ds.x_test[:n], ks, seed=ctx.seed)
    r = ctx.get("figures_vae.iwae", make)
    return plot_iwae_bound(r["ks"], r["iwae"], r["elbo"], elbo_k=r["elbo_k"],
                           title=f"IWAE bound tightening with k\n{_on(ds, note, vae)}, "
                                 f"{r['iwae'].shape[1]} test images")


__all__ = ["FASHION_MNIST_CLASSES", "class_names", "pictures_dataset", "pretty_name", "architecture",
           "iwae_versus_k"]
