"""Figures: image grids, reconstructions, samples, the latent space, loss curves.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot (so no display and
no global figure state are needed; Agg renders it), with a title and labelled axes. Save one
with ``fig.savefig("name.png", dpi=120)``; in a notebook it shows inline.
"""
from statistics import NormalDist

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure

from .errors import TinyVAEError
from .model import check_positive_int

PAD_VALUE = 0.5          # the mid-gray lines between the images of a grid (white would read as ink)
MAX_PICTURES = 2500      # a 50 x 50 grid: more pictures are too small to see in one figure


def _image_shape(image_shape):
    """(h, w) as two positive integers, or a TinyVAEError saying what to pass."""
    try:
        h, w = image_shape
    except (TypeError, ValueError):
        raise TinyVAEError(f"image_shape must be (height, width), e.g. ds.image_shape, got {image_shape!r}") from None
    return check_positive_int("image_shape's height", h), check_positive_int("image_shape's width", w)


def _check_pictures(count, what):
    """Refuse a grid of more than MAX_PICTURES pictures before anything is decoded (a 300 x 300
    manifold had asked for 5.6 GB for a figure 770 pixels wide)."""
    if count > MAX_PICTURES:
        raise TinyVAEError(f"{what} asks for {count} pictures in one figure; at most {MAX_PICTURES} (50 x 50) "
                           "can be told apart: ask for fewer")


def montage(images, image_shape, ncols, pad=1, pad_value=PAD_VALUE):
    """Tile rows of pixels into one 2-D picture: (n, h*w) -> (rows*(h+pad)-pad, ncols*(w+pad)-pad)."""
    images = np.asarray(images, dtype=np.float32)
    h, w = _image_shape(image_shape)
    if images.ndim == 3 and images.shape[1:] == (h, w):
        images = images.reshape(images.shape[0], h * w)      # (n, h, w) pictures as rows
    n = images.shape[0] if images.ndim else 0
    if images.ndim != 2 or n == 0 or images.shape[1] != h * w:
        raise TinyVAEError(f"images must be rows of h*w = {h}*{w} = {h * w} pixels (or (n, {h}, {w}) pictures), at "
                           f"least one, got shape {images.shape}; pass the data's image_shape (ds.image_shape)")
    _check_pictures(n, "the grid")
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = images[i].reshape(h, w)
    return canvas


def _new_figure(width, height):
    return Figure(figsize=(width, height), layout="constrained")


def _show_grid(ax, canvas, image_shape, ncols, pad):
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    h, w = image_shape
    ax.set_xticks([c * (w + pad) + (w - 1) / 2 for c in range(ncols)])
    ax.set_xticklabels([str(c + 1) for c in range(ncols)], fontsize=7)
    ax.tick_params(length=0)


def image_grid(images, image_shape, ncols=None, title="Images", xlabel="column", ylabel="row", pad=1):
    """A grid of images. Inputs: images (n, h*w) in [0, 1], image_shape (h, w). Returns: Figure."""
    images = np.asarray(images)
    if images.ndim == 1:
        images = images[None, :]                       # a single image as one row
    n = images.shape[0]
    if n == 0:
        raise TinyVAEError("image_grid needs at least one image")
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else check_positive_int("ncols", ncols)
    nrows = -(-n // ncols)
    h, w = _image_shape(image_shape)
    canvas = montage(images, image_shape, ncols, pad)
    width = min(10, 0.6 + ncols * 0.5 * max(1, w / 10))
    longest = max(len(line) for line in str(title).splitlines() or [""])
    width = max(width, min(10, 0.4 + 0.075 * longest))        # about 0.075 in per character at 10 pt
    fig = _new_figure(width, min(10, 0.9 + nrows * 0.5 * max(1, h / 10)))
    ax = fig.add_subplot()
    _show_grid(ax, canvas, image_shape, ncols, pad)
    ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(nrows)])
    ax.set_yticklabels([str(r + 1) for r in range(nrows)], fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def reconstruct(model, x):
    """The model's reconstruction of x: the decoded mean at z = mu(x) (VAE) or g(f(x)) (autoencoder)."""
    return model.reconstruct(x)


def plot_reconstructions(model, x, image_shape, n=10, rows=2, *, title=None):
    """Inputs above their reconstructions: ``rows`` pairs of rows of ``n`` images from x's first rows.

    For a VAE the reconstruction is the mean of p(x|z) at z = mu(x), the posterior mean.
    ``title`` replaces the default first line of the title."""
    _needs_model(model, "plot_reconstructions", "plot_reconstructions(model, ds.x_test, ds.image_shape)")
    n, rows = check_positive_int("n", n), check_positive_int("rows", rows)
    image_shape = _image_shape(image_shape)
    x = np.asarray(x)
    x = (x[None, :] if x.ndim == 1 else x)[:n * rows]    # a single image as one row
    columns = max(1, min(n, x.shape[0]))
    _check_pictures(2 * columns * -(-x.shape[0] // columns), f"plot_reconstructions with n={n}, rows={rows}")
    x_hat = reconstruct(model, x)
    ncols = min(n, x.shape[0])
    pairs = []
    for r in range(0, x.shape[0], ncols):
        block_x, block_r = x[r:r + ncols], x_hat[r:r + ncols]
        fill = ncols - block_x.shape[0]
        if fill:
            blank = np.full((fill, x.shape[1]), PAD_VALUE)
            block_x, block_r = np.vstack([block_x, blank]), np.vstack([block_r, blank])
        pairs += [block_x, block_r]
    images = np.vstack(pairs)
    h, w = image_shape
    pad = 1
    canvas = montage(images, image_shape, ncols, pad)
    nrows = images.shape[0] // ncols
    what = "decoded mean at z = mu(x)" if getattr(model, "kind", None) == "vae" else "g(f(x))"
    text = f"{title or 'Reconstructions'}\ninputs above, {what} below"
    longest = max(len(line) for line in text.splitlines())
    width = max(min(10, 0.8 + ncols * 0.5 * max(1, w / 10)), min(10, 1.2 + 0.075 * longest))   # the title fits
    fig = _new_figure(width, min(10, 1.0 + nrows * 0.5 * max(1, h / 10)))
    ax = fig.add_subplot()
    _show_grid(ax, canvas, image_shape, ncols, pad)
    ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(nrows)])
    ax.set_yticklabels(["input x", "reconstruction"] * (nrows // 2), fontsize=7)
    ax.set_title(text, fontsize=10)
    ax.set_xlabel("example")
    return fig


def plot_samples(vae, image_shape, n=64, seed=0, *, title=None):
    """New images from the prior: z ~ N(0, I), shown as the decoder's mean, in a square grid.
    ``title`` replaces the default first line of the title."""
    _needs_vae(vae, "plot_samples", "plot_samples(vae, ds.image_shape)")
    n, image_shape = check_positive_int("n", n), _image_shape(image_shape)
    _check_pictures(n, f"plot_samples with n={n}")
    x = vae.sample(n, seed=seed)
    return image_grid(x, image_shape, title=f"{title or 'Samples from the prior'}\n"
                                            f"z ~ N(0, I), mean of p(x|z) (seed {seed})",
                      xlabel="sample", ylabel="sample row")


def _needs_model(model, what, call):
    """A clear error when the first argument is not a model (arguments in another order)."""
    if getattr(model, "kind", None) not in ("vae", "ae"):
        raise TinyVAEError(f"{what} takes the model first, {call}; got {type(model).__name__} "
                           "as the first argument")


def _needs_vae(model, what, call):
    _needs_model(model, what, call)
    if model.kind != "vae":
        raise TinyVAEError(f"{what} draws from a VAE's prior p(z); an autoencoder has none (use "
                           "plot_reconstructions or plot_latent_space for it)")


def encode_mean(model, x):
    """mu(x) for a VAE, the code h = f(x) for an autoencoder, (N, Z)."""
    if getattr(model, "kind", None) == "vae":
        return model.encode(x)[0]
    return model.encode(x)


def plot_latent_space(model, x, y=None, max_points=5000, *, class_names=None, title=None):
    """The posterior means mu(x) (a VAE) or codes h (an autoencoder) of x, first two dimensions,
    coloured by label y when given (a legend for up to 10 classes, else a colorbar).

    ``class_names`` (a sequence indexed by label) names the classes in the legend; ``title``
    replaces the default first line of the title."""
    _needs_model(model, "plot_latent_space", "plot_latent_space(model, ds.x_test, ds.y_test)")
    max_points = check_positive_int("max_points", max_points)
    x = np.asarray(x)
    n_given = len(x)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n_given:
            raise TinyVAEError(f"y must hold one label per row of x ({n_given}), got shape {y.shape}; "
                               "give the labels of these examples (ds.y_test with ds.x_test)")
    x = x[:max_points]
    z = np.asarray(encode_mean(model, x), dtype=np.float64)
    name = "mu" if getattr(model, "kind", None) == "vae" else "h"
    fig = _new_figure(7.4 if y is not None else 6.4, 5.4)
    ax = fig.add_subplot()
    ax.set_aspect("equal", adjustable="datalim")
    z1 = z[:, 0]
    z2 = z[:, 1] if z.shape[1] > 1 else np.zeros_like(z1)
    if y is None:
        ax.scatter(z1, z2, s=6, alpha=0.6, color="tab:blue")
    else:
        y = y[:len(z1)]
        classes = np.unique(y)
        if len(classes) <= 10:
            names = None if class_names is None else _class_names(class_names, classes)
            index = np.searchsorted(classes, y)                      # class of each point, 0..9
            # one scatter in a random order: class by class, the last class drawn would cover
            # the others where they overlap and look like the largest cluster
            order = np.random.default_rng(0).permutation(len(z1))
            ax.scatter(z1[order], z2[order], s=8, alpha=0.7, c=[f"C{i}" for i in index[order]], linewidths=0)
            for i, c in enumerate(classes):
                sel = index == i
                label = str(c) if names is None else f"{c}: {names[i]}"
                ax.scatter([], [], s=30, color=f"C{i}", label=label)        # the legend's entry
                if sel.any():                                               # the label at the class's median
                    ax.text(np.median(z1[sel]), np.median(z2[sel]), str(c), fontsize=11, weight="bold",
                            ha="center", va="center", color="black",
                            path_effects=[patheffects.withStroke(linewidth=3, foreground="white")])
            ax.legend(title="label (at its median)", fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        else:
            sc = ax.scatter(z1, z2, s=6, alpha=0.7, c=y, cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel(f"{name}_1")
    ax.set_ylabel(f"{name}_2" if z.shape[1] > 1 else "(one latent dimension)")
    kind = "posterior means mu(x)" if name == "mu" else "codes h = f(x)"
    extra = f" (first 2 of {z.shape[1]} dimensions)" if z.shape[1] > 2 else ""
    ax.grid(alpha=0.25)
    shown = f"{len(z1)} examples" if len(z1) == n_given else f"the first {len(z1)} of {n_given} examples"
    ax.set_title(f"{title or 'Latent space'}\n{kind} of {shown}{extra}", fontsize=10)
    return fig


def _class_names(class_names, classes):
    """The name of each label in ``classes``: ``class_names[label]`` for whole-number labels >= 0."""
    try:
        numbers = [float(c) for c in classes]
        if any(v < 0 or v != int(v) for v in numbers):
            raise ValueError
        return [class_names[int(v)] for v in numbers]
    except (ValueError, TypeError, IndexError, KeyError):
        shown = ", ".join(str(c) for c in classes)
        raise TinyVAEError(f"class_names names the labels 0, 1, ... by index ({len(class_names)} names), but the "
                           f"labels are {shown}; give a name for each of them") from None


def normal_quantiles(n, lo=0.02, hi=0.98):
    """n evenly spaced probabilities in [lo, hi] mapped through the inverse normal CDF: a grid of
    z values spaced like the N(0, 1) prior (Kingma & Welling 2013, fig. 4)."""
    return np.array([NormalDist().inv_cdf(p) for p in np.linspace(lo, hi, n)])


def _symmetric_ticks(n):
    """Up to five cells of an n-cell axis to label, mirrored about the middle: both ends, and the
    middle cell only when n is odd (with n even, no cell sits at z = 0, and an off-centre cell
    labelled 0.06 would look like the middle)."""
    left = np.unique(np.floor(np.linspace(0, (n - 1) / 2, 3)).astype(int))
    if n % 2 == 0 and len(left) > 1:
        left = left[:-1]                      # the cell just left of the middle: not z = 0
    return np.unique(np.concatenate([left, n - 1 - left]))


def plot_latent_manifold(vae, image_shape, n=15, *, title=None):
    """Decoded means on an n x n grid of z = (z_1, z_2) through the prior's quantiles.

    Needs a 2-D latent space. z_2 grows upwards, as in a scatter plot of the latent space.
    ``title`` replaces the default first line of the title."""
    _needs_vae(vae, "plot_latent_manifold", "plot_latent_manifold(vae, ds.image_shape)")
    if vae.latent_dim != 2:
        raise TinyVAEError(f"the latent manifold plot needs latent_dim=2, this model has {vae.latent_dim}")
    n, (h, w) = check_positive_int("n", n), _image_shape(image_shape)
    _check_pictures(n * n, f"the latent manifold with n={n} (an n x n grid)")
    q = normal_quantiles(n)                                      # (n,)
    z1, z2 = np.meshgrid(q, q[::-1])                             # row 0 at the top: largest z_2
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)               # (n*n, 2)
    x = vae.decode(z)                                            # (n*n, D)
    pad = 1
    canvas = montage(x, image_shape, n, pad, pad_value=0.3)     # thin dark lines: a continuous sheet
    fig = _new_figure(7, 7.3)
    ax = fig.add_subplot()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ticks = _symmetric_ticks(n)
    ax.set_xticks(ticks * (w + pad) + (w - 1) / 2)
    ax.set_xticklabels([f"{q[i]:.2f}" for i in ticks], fontsize=8)
    ax.set_yticks(ticks * (h + pad) + (h - 1) / 2)
    ax.set_yticklabels([f"{q[::-1][i]:.2f}" for i in ticks], fontsize=8)
    ax.set_xlabel("z_1 (values at the prior's 2% .. 98% quantiles)")
    ax.set_ylabel("z_2 (values at the prior's 2% .. 98% quantiles)")
    ax.set_title(f"{title or 'The learned manifold'}\nmean of p(x|z) on a grid of z through the prior's quantiles",
                 fontsize=10)
    return fig


VAE_LABELS = {"loss": "loss = rec + beta KL (-ELBO when beta = 1)",
              "rec": "reconstruction: -log p(x|z)",
              "kl": "KL(q(z|x) || p(z))"}
AE_LABELS = {"loss": "loss = L(x, g(f(x))) + Omega",
             "rec": "reconstruction L(x, g(f(x)))",
             "penalty": "penalty Omega(h)"}


def plot_history(history, title="Loss curves", *, val_label="validation", unit=None):
    """One panel per history term (the loss, then e.g. the reconstruction and KL terms apart),
    training as a solid line and validation dashed when present.

    The training value of an epoch is the mean over its minibatches, while the weights moved;
    the validation value is taken at the epoch's end, so in the first epochs it can lie below
    the training curve. ``val_label`` names the held-out data ("test" when it is the test
    set); ``unit`` labels the y axes (default: nats for a VAE's history, else "loss per example"). A first
    epoch far above the rest is left off the top of the axes (its value is written there), so
    that the later epochs do not look flat. The KL and the penalty, never negative, are drawn
    from 0."""
    if not isinstance(history, dict) or "loss" not in history:
        got = "" if isinstance(history, dict) else f", got {type(history).__name__}"
        raise TinyVAEError(f"history needs a 'loss' list, one value per epoch: the dict fit returns "
                           f"(history = tv.fit(...)){got}")
    keys = ["loss"] + [k for k in history if k not in ("epoch", "loss") and not k.startswith("val_")]
    if "penalty" in keys and not any(history["penalty"]):
        keys.remove("penalty")                    # an autoencoder without a regularizer: loss = rec
        if "rec" in keys and np.array_equal(history["rec"], history["loss"]):
            keys.remove("rec")
    vae = "kl" in history
    labels = VAE_LABELS if vae else AE_LABELS
    unit = unit or ("nats per example" if vae else "loss per example")
    epochs = history.get("epoch")
    epochs = list(range(1, len(history["loss"]) + 1)) if epochs is None or len(epochs) == 0 else list(epochs)
    for k in keys + [f"val_{k}" for k in keys if f"val_{k}" in history]:
        if len(history[k]) != len(epochs):
            raise TinyVAEError(f"history[{k!r}] has {len(history[k])} values for {len(epochs)} epochs; give "
                               "one value per epoch in every list, as fit returns them")
    fig = _new_figure(4.2 * len(keys), 3.6)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys):
        _curve(ax, epochs, history[k], color="C0", label="train (mean over the epoch)")
        if f"val_{k}" in history:
            _curve(ax, epochs, history[f"val_{k}"], color="C1", ls="--", label=f"{val_label} (at the epoch's end)")
        _limits(ax, [history[k]] + ([history[f"val_{k}"]] if f"val_{k}" in history else []),
                from_zero=k in ("kl", "penalty"))
        ax.set_title(labels.get(k, k), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _limits(ax, curves, from_zero=False):
    """y limits from the finite values of epochs 2.. when the first epoch's would squash them (it
    is more than the later range above their top): the first values are written at the top."""
    v = np.array([np.asarray(c, dtype=np.float64) for c in curves])        # (curves, epochs)
    if from_zero and np.all(v[np.isfinite(v)] >= 0):
        ax.set_ylim(bottom=0)
    if v.shape[1] < 4:
        return
    later = v[:, 1:][np.isfinite(v[:, 1:])]
    first = v[:, 0][np.isfinite(v[:, 0])]
    if later.size == 0 or first.size == 0:
        return
    lo, hi = later.min(), later.max()
    span = max(hi - lo, 1e-12)
    if first.max() > hi + span:
        bottom = 0 if from_zero else lo - 0.1 * span
        ax.set_ylim(bottom, hi + 0.25 * span)
        ax.text(0.02, 0.97, "epoch 1 off the top: " + ", ".join(f"{f:.4g}" for f in first),
                transform=ax.transAxes, fontsize=7, va="top", color="0.3")


def _curve(ax, epochs, values, **style):
    """A loss curve, with a dot at every value that has no finite neighbour (a single epoch, or a
    last epoch validated after epochs without x_val), which a line alone would not show."""
    v = np.asarray(values, dtype=np.float64)
    ax.plot(epochs, v, **style)
    finite = np.isfinite(v)
    before = np.concatenate([[False], finite[:-1]])
    after = np.concatenate([finite[1:], [False]])
    alone = finite & ~before & ~after
    if alone.any():
        ax.plot(np.asarray(epochs)[alone], v[alone], ls="none", marker="o", ms=4, color=style.get("color"))
