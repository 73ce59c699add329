"""Figures of lessons 3-4 (undercomplete and regularized autoencoders), and the experiments
behind them; registered with :func:`tinyvae.figures.figure`.

Lesson 3 and ``tinyvae figures`` call the same functions here, so they train the same models
the same way and report the same numbers.

Lesson 3, the undercomplete autoencoder (Goodfellow et al. sec. 14.1):

    principal_angles_deg      angles between two subspaces (Bjorck & Golub 1973)
    reconstruction_error      mean 1/2 ||x - g(f(x))||^2 of anything with transform / inverse_transform
    linear_autoencoder        hidden_dims=(), identity, mse: learns the principal subspace
    nonlinear_autoencoder     one tanh hidden layer: beats PCA at the same code size
    pca_comparison            PCA vs linear AE vs nonlinear AE over code sizes
    plot_linear_ae_vs_pca     PCA components, the linear AE's decoder rows, angles, errors
    plot_reconstruction_comparison   test digits through PCA and both autoencoders

Lesson 4, regularized autoencoders L(x, g(f(x))) + Omega(h, x) (secs. 14.2, 14.5, 14.7):

    sparse_sweep / plot_sparse_codes              Omega = lambda sum |h_j|  (sec. 14.2.1)
    curve, nearest_on_curve, denoising_experiment,
    denoising_field / plot_denoising_field        x_tilde ~ C(x_tilde | x) (sec. 14.5, fig. 14.4)
    smoothed_score_field                          sigma^2 d log p_sigma(x~) / dx~, the field's target
    contractive_sweep / plot_contractive_jacobian Omega = lambda ||dh/dx||_F^2 (eq. 14.18)
    curve_tangent, local_contraction /
    plot_local_contraction                        the local singular vectors of dh/dx (sec. 14.7)

Every plot function returns a ``matplotlib.figure.Figure`` built without pyplot, with a title
and labelled axes.
"""
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .autoencoder import Autoencoder
from .figures import figure
from .plots import PAD_VALUE, montage
from .recipes import one_blas_thread
from .train import fit


def _figure(width, height):
    return Figure(figsize=(width, height), layout="constrained")


def _plain_log_labels(axis):
    """Label a log axis 0.1, 0.2, 0.5, 1, 2, 5, ... instead of 10^-1, 2x10^-1, ..."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


# ============================================================================================
# lesson 3: the undercomplete autoencoder and PCA

def principal_angles_deg(A, B):
    """Principal angles (degrees, ascending) between the column spaces of A (D, k) and B (D, m).

    With orthonormal bases Q_A, Q_B (QR), the singular values of Q_A^T Q_B are the cosines of
    the principal angles (Bjorck & Golub 1973): all 0 degrees when the spaces coincide,
    whatever bases A and B use for them. Returns min(k, m) angles."""
    QA, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    QB, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    cosines = np.linalg.svd(QA.T @ QB, compute_uv=False)          # descending cosines
    return np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def reconstruction_error(model, x):
    """Mean over the rows of x of 1/2 ||x - inverse_transform(transform(x))||^2.

    The autoencoder's squared-error loss L (eq. 14.1 with loss="mse"); works for
    ``sklearn.decomposition.PCA`` and :class:`tinyvae.Autoencoder` alike."""
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(model.inverse_transform(model.transform(x)), dtype=np.float64)
    return float(np.mean(0.5 * np.sum((x - x_hat) ** 2, axis=1)))


# (epochs, learning rate) stages at batch size 64: Adam at 1e-2 finds the subspace, the smaller
# steps remove the minibatch noise so the last (smallest-variance) directions settle too.
LINEAR_SCHEDULE = ((400, 1e-2), (200, 1e-3), (100, 1e-4))
LINEAR_SCHEDULE_QUICK = ((200, 1e-2), (100, 1e-3), (50, 1e-4))


def linear_autoencoder(x, code_dim, schedule=LINEAR_SCHEDULE, batch_size=64, seed=0):
    """The linear autoencoder h = x W_e + b_e, r = h W_d + b_d with squared error (sec. 14.1),
    trained by Adam through ``schedule``, a sequence of (epochs, lr) stages."""
    ae = Autoencoder(x.shape[1], hidden_dims=(), code_dim=code_dim, activation="identity",
                     loss="mse", seed=seed)
    with one_blas_thread():
        for epochs, lr in schedule:
            fit(ae, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return ae


def nonlinear_autoencoder(x, code_dim, hidden_dims=(128,), activation="tanh", epochs=100,
                          batch_size=32, lr=3e-3, seed=0):
    """A nonlinear undercomplete autoencoder D -> hidden -> code_dim -> hidden -> D, squared error
    (the same loss as PCA's, so the comparison is fair)."""
    ae = Autoencoder(x.shape[1], hidden_dims=hidden_dims, code_dim=code_dim, activation=activation,
                     loss="mse", seed=seed)
    with one_blas_thread():
        fit(ae, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    return ae


def pca_comparison(x_train, x_test, code_dims, linear_schedule=LINEAR_SCHEDULE, nonlinear_epochs=100,
                   seed=0):
    """PCA, the linear autoencoder and a nonlinear autoencoder, one of each per code size.

    Returns a dict:

        code_dims               (K,)
        pca, linear, nonlinear  (K,) test reconstruction error, mean 1/2 ||x - x_hat||^2
        pca_train, linear_train (K,) the same on the training data (what both minimise)
        angles                  list of K arrays: principal angles (degrees) between the
                                span of the linear AE's decoder rows and the top-k PCA subspace
        models                  dict "pca" / "linear" / "nonlinear" -> list of K fitted models
    """
    from sklearn.decomposition import PCA

    out = {k: [] for k in ("pca", "linear", "nonlinear", "pca_train", "linear_train", "angles")}
    models = {"pca": [], "linear": [], "nonlinear": []}
    for k in code_dims:
        pca = PCA(n_components=k).fit(x_train)
        lin = linear_autoencoder(x_train, k, schedule=linear_schedule, seed=seed)
        nonlin = nonlinear_autoencoder(x_train, k, epochs=nonlinear_epochs, seed=seed)
        out["angles"].append(principal_angles_deg(lin.params["dec.W0"].T, pca.components_.T))
        for name, model in (("pca", pca), ("linear", lin), ("nonlinear", nonlin)):
            out[name].append(reconstruction_error(model, x_test))
            models[name].append(model)
        out["pca_train"].append(reconstruction_error(pca, x_train))
        out["linear_train"].append(reconstruction_error(lin, x_train))
    result = {k: (v if k == "angles" else np.array(v)) for k, v in out.items()}
    result["code_dims"] = np.asarray(code_dims)
    result["models"] = models
    return result


def project_onto_rows(V, W):
    """The rows of V (m, D) projected orthogonally onto the span of the rows of W (k, D)."""
    Q, _ = np.linalg.qr(np.asarray(W, dtype=np.float64).T)           # (D, k) orthonormal
    V = np.asarray(V, dtype=np.float64)
    return (V @ Q) @ Q.T


def _tile_signed(images, image_shape):
    """One row of images, each scaled to [-1, 1] by its largest |value|; NaN between them."""
    images = np.asarray(images, dtype=np.float64)
    scaled = images / np.maximum(np.abs(images).max(axis=1, keepdims=True), 1e-12)
    canvas = montage(scaled, image_shape, ncols=len(images))
    pad = montage(np.zeros_like(scaled), image_shape, ncols=len(images)) == PAD_VALUE
    canvas[pad] = np.nan
    return canvas


def _show_signed_row(ax, images, image_shape, title, label):
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(_tile_signed(images, image_shape), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    h, w = image_shape
    ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(len(images))])
    ax.set_xticklabels([str(c + 1) for c in range(len(images))], fontsize=8)
    ax.set_yticks([])
    ax.tick_params(length=0)
    ax.set_xlabel(label, fontsize=9)
    ax.set_title(title, fontsize=10)


def plot_linear_ae_vs_pca(result, image_shape, index=None):
    """The linear autoencoder against PCA.

    Left, for one code size k: the PCA components (orthonormal, ordered by variance), the
    linear AE's decoder rows W_d (another basis of the same subspace), and the PCA components
    projected onto span(W_d) (unchanged: the subspace is the same). Right: the principal angles
    between the two subspaces, and the test reconstruction error against the code size for
    PCA, the linear AE and the nonlinear AE."""
    dims = list(result["code_dims"])
    i = dims.index(8) if index is None and 8 in dims else (len(dims) - 1 if index is None else index)
    k = dims[i]
    pca, lin = result["models"]["pca"][i], result["models"]["linear"][i]
    components = pca.components_                                      # (k, D), orthonormal rows
    W_d = lin.params["dec.W0"].astype(np.float64)                     # (k, D), decoder rows
    fig = _figure(14, 6.4)
    gs = fig.add_gridspec(3, 2, width_ratios=[1.6, 1])
    rows = [(components, f"PCA components v_1..v_{k} (orthonormal, ordered by variance)",
             "component  (red > 0 > blue; each image scaled to its largest |value|)"),
            (W_d, f"linear autoencoder: decoder rows of W_d ({k} x {W_d.shape[1]}), trained from a random start",
             "decoder row"),
            (project_onto_rows(components, W_d), "PCA components projected onto span(W_d): unchanged",
             "component")]
    for r, (images, title, label) in enumerate(rows):
        _show_signed_row(fig.add_subplot(gs[r, 0]), images, image_shape, title, label)

    ax_a = fig.add_subplot(gs[0, 1])
    angles = result["angles"][i]
    ax_a.bar(np.arange(1, len(angles) + 1), angles, color="C1")
    ax_a.set_ylim(0, max(5.0, 1.2 * float(angles.max())))
    ax_a.set_xlabel("principal angle index")
    ax_a.set_ylabel("angle (degrees)")
    ax_a.set_title(f"principal angles, span(W_d) vs PCA subspace (k = {k}); max {angles.max():.2f} deg",
                   fontsize=10)
    ax_a.grid(alpha=0.3, axis="y")

    ax_e = fig.add_subplot(gs[1:, 1])
    styles = (("pca", "PCA", "o-", "C0"), ("linear", "linear AE", "x--", "C1"),
              ("nonlinear", "nonlinear AE (128 tanh)", "s-", "C2"))
    for key, label, style, colour in styles:
        ax_e.plot(dims, result[key], style, color=colour, label=label, ms=7 if key == "linear" else 5)
    ax_e.set_xscale("log", base=2)
    ax_e.set_xticks(dims)
    ax_e.set_xticklabels([str(d) for d in dims])
    ax_e.set_yscale("log")
    _plain_log_labels(ax_e.yaxis)
    ax_e.set_xlabel("code size k")
    ax_e.set_ylabel("test error, mean 1/2 ||x - x_hat||^2")
    ax_e.set_title("reconstruction error on test digits", fontsize=10)
    ax_e.grid(alpha=0.3, which="both")
    ax_e.legend(fontsize=9)
    fig.suptitle("A linear autoencoder learns the PCA subspace, in another basis (Goodfellow et al. sec. 14.1)",
                 fontsize=12)
    return fig


def plot_reconstruction_comparison(x, models, image_shape, title="Reconstructions"):
    """Rows: the inputs x (n, D), then inverse_transform(transform(x)) for each model of the
    dict ``models`` (label -> model), with each row's mean 1/2 ||x - x_hat||^2 in its label."""
    x = np.asarray(x, dtype=np.float64)
    rows, labels = [x], ["input x"]
    for label, model in models.items():
        x_hat = np.asarray(model.inverse_transform(model.transform(x)), dtype=np.float64)
        rows.append(np.clip(x_hat, 0, 1))
        labels.append(f"{label}\nerror {np.mean(0.5 * np.sum((x - x_hat) ** 2, axis=1)):.3f}")
    n = x.shape[0]
    h, w = image_shape
    canvas = montage(np.vstack(rows), image_shape, ncols=n)
    fig = _figure(min(14, 1.8 + 0.55 * n), 1.2 + 0.75 * len(rows))
    ax = fig.add_subplot()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(n)])
    ax.set_xticklabels([str(c + 1) for c in range(n)], fontsize=7)
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(rows))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("test example")
    ax.set_title(title, fontsize=10)
    return fig


# ============================================================================================
# lesson 4: sparse autoencoders (sec. 14.2.1)

def sparse_sweep(x_train, x_test, lambdas, code_dim=128, epochs=30, batch_size=64, lr=3e-3, seed=0,
                 threshold=0.01):
    """One overcomplete relu autoencoder h = relu(x W + b) per L1 weight lambda (``sparse_l1``).

    Returns a dict of arrays over the lambdas:

        lambdas        (L,)
        frac_zero      (L,)  fraction of code units with |h_j| < threshold, over test examples
        active         (L,)  mean number of code units with |h_j| >= threshold per test example
        l1             (L,)  mean sum_j |h_j|
        rec            (L,)  test reconstruction error, mean 1/2 ||x - g(f(x))||^2
        codes          list of L arrays (N_test, code_dim): the test codes h
    """
    out = {k: [] for k in ("frac_zero", "active", "l1", "rec", "codes")}
    for lam in lambdas:
        ae = Autoencoder(x_train.shape[1], hidden_dims=(), code_dim=code_dim, activation="relu",
                         loss="mse", sparse_l1=lam, seed=seed)
        with one_blas_thread():
            fit(ae, x_train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
        h = ae.encode(x_test).astype(np.float64)                             # (N, C)
        small = np.abs(h) < threshold
        out["frac_zero"].append(small.mean())
        out["active"].append((~small).sum(axis=1).mean())
        out["l1"].append(np.abs(h).sum(axis=1).mean())
        out["rec"].append(reconstruction_error(ae, x_test))
        out["codes"].append(h)
    result = {k: (v if k == "codes" else np.array(v)) for k, v in out.items()}
    result["lambdas"] = np.asarray(lambdas, dtype=np.float64)
    result["threshold"], result["code_dim"] = threshold, code_dim
    return result


def plot_sparse_codes(result, show=None):
    """Left: histograms of the code values h for a few lambdas (log counts). Right: the fraction
    of near-zero code units and the test reconstruction error against lambda."""
    lambdas = result["lambdas"]
    show = show if show is not None else sorted({0, len(lambdas) // 2, len(lambdas) - 1})
    fig = _figure(12, 4.4)
    ax_h, ax_f = fig.subplots(1, 2)
    top = max(float(result["codes"][i].max()) for i in show)
    bins = np.linspace(0, max(top, 1e-3), 40)
    for j, i in enumerate(show):
        h = result["codes"][i].ravel()
        ax_h.hist(h, bins=bins, histtype="step", lw=1.8, color=f"C{j}",
                  label=f"lambda = {lambdas[i]:g}: {100 * result['frac_zero'][i]:.0f}% near 0")
    ax_h.set_yscale("log")
    ax_h.set_xlabel("code value h_j (relu, so h_j >= 0)")
    ax_h.set_ylabel("count (test examples x code units)")
    ax_h.set_title(f"code values, {result['code_dim']} code units", fontsize=10)
    ax_h.legend(fontsize=8)
    ax_h.grid(alpha=0.3)

    pos = np.arange(len(lambdas))
    ax_f.plot(pos, result["frac_zero"], "o-", color="C0", label=f"fraction |h_j| < {result['threshold']:g}")
    ax_f.set_ylim(0, 1)
    ax_f.set_xticks(pos)
    ax_f.set_xticklabels([f"{v:g}" for v in lambdas])
    ax_f.set_xlabel("L1 weight lambda (sparse_l1)")
    ax_f.set_ylabel("fraction of near-zero code units", color="C0")
    ax_r = ax_f.twinx()
    ax_r.plot(pos, result["rec"], "s--", color="C3", label="test error 1/2 ||x - g(f(x))||^2")
    ax_r.set_ylabel("test reconstruction error", color="C3")
    ax_f.set_title("sparsity against reconstruction", fontsize=10)
    ax_f.grid(alpha=0.3)
    lines = ax_f.get_lines() + ax_r.get_lines()
    ax_f.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")
    fig.suptitle("Sparse autoencoder: Omega(h) = lambda sum_j |h_j| (Goodfellow et al. sec. 14.2.1)",
                 fontsize=12)
    return fig


# ============================================================================================
# lesson 4: denoising autoencoders (sec. 14.5) on a curve in the plane

def curve(t):
    """A 1-D manifold in R^2: t -> (t, 0.6 sin 2t). t (n,) -> points (n, 2)."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([t, 0.6 * np.sin(2 * t)], axis=1)


def curve_tangent(t):
    """The unit tangent of :func:`curve` at t: d/dt (t, 0.6 sin 2t) = (1, 1.2 cos 2t), normalised. (n, 2)"""
    t = np.asarray(t, dtype=np.float64)
    d = np.stack([np.ones_like(t), 1.2 * np.cos(2 * t)], axis=1)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def nearest_on_curve(x, t_range=(-1.6, 1.6), n_grid=6401):
    """The point of :func:`curve` nearest to each row of x (n, 2), by a dense grid in t.

    Returns (nearest (n, 2), toward = nearest - x (n, 2))."""
    x = np.asarray(x, dtype=np.float64)
    grid = curve(np.linspace(*t_range, n_grid))                            # (G, 2)
    d2 = (x[:, None, 0] - grid[None, :, 0]) ** 2 + (x[:, None, 1] - grid[None, :, 1]) ** 2
    nearest = grid[np.argmin(d2, axis=1)]
    return nearest, nearest - x


def smoothed_score_field(x_tilde, x_train, noise_std):
    """sigma^2 times the score of the noisy data, sigma^2 d log p_sigma(x~) / dx~, at points
    x~ (n, D), where p_sigma(x~) = 1/N sum_i N(x~; x_i, sigma^2 I) is the training set x_train
    (N, D) blurred by the corruption x~ = x + sigma eps. (n, D), in float64.

    Differentiating the log of the mixture,

        sigma^2 d log p_sigma(x~) / dx~ = sum_i w_i (x_i - x~) = E[x | x~] - x~,
        w_i = N(x~; x_i, sigma^2 I) / sum_k N(x~; x_k, sigma^2 I)

    (Tweedie's formula): the step from x~ to the posterior mean of the clean point. That
    posterior mean is also the reconstruction that minimises the denoising loss
    E ||g(f(x~)) - x||^2 over all functions, so a DAE with enough capacity learns
    g(f(x~)) - x~ = sigma^2 d log p_sigma / dx~ (sec. 14.5; Vincent 2011, Alain & Bengio 2014)."""
    x_tilde, x_train = np.asarray(x_tilde, dtype=np.float64), np.asarray(x_train, dtype=np.float64)
    d2 = np.sum((x_tilde[:, None, :] - x_train[None, :, :]) ** 2, axis=2)          # (n, N)
    log_w = -d2 / (2 * noise_std**2)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)                                            # (n, N) weights w_i
    return w @ x_train - x_tilde                                                 # E[x | x~] - x~


def denoising_field(ae, x_tilde, toward):
    """The reconstruction field v = g(f(x~)) - x~ at points x~ (n, 2) against the true
    direction ``toward`` the manifold (n, 2).

    Returns (v (n, 2), cosine (n,) of the angle between v and toward, length ratio
    ||v|| / ||toward|| (n,))."""
    x_tilde = np.asarray(x_tilde, dtype=np.float64)
    v = ae.reconstruct(x_tilde).astype(np.float64) - x_tilde
    nv, nt = np.linalg.norm(v, axis=1), np.linalg.norm(toward, axis=1)
    cosine = np.sum(v * toward, axis=1) / np.maximum(nv * nt, 1e-300)
    return v, cosine, nv / np.maximum(nt, 1e-300)


def denoising_experiment(noise_stds=(0.2, 0.0), n_train=2000, n_test=500, epochs=60, seed=0,
                         min_distance=0.05):
    """Train one autoencoder 2 -> 64 relu -> 16 -> 64 -> 2 per corruption level ``noise_std``
    on points near :func:`curve`, and measure its field g(f(x~)) - x~ at noisy points x~.

    The code (16 units) is larger than the input (2): without noise the network can learn the
    identity and its field vanishes; with noise it must map x~ back to the curve.

    Returns a dict: x_train (n_train, 2), x_tilde (n_test, 2), toward (n_test, 2), off (n_test,)
    bool (points farther than ``min_distance`` from the curve, where the direction is well
    defined), and per noise level (lists): noise_stds, models, field, cosine, length_ratio,
    mean_cosine (over the ``off`` points), median_length_ratio."""
    rng = np.random.default_rng(seed)
    x_train = curve(rng.uniform(-1.5, 1.5, n_train)) + 0.02 * rng.standard_normal((n_train, 2))
    x_tilde = curve(rng.uniform(-1.4, 1.4, n_test)) + 0.2 * rng.standard_normal((n_test, 2))
    _, toward = nearest_on_curve(x_tilde)
    off = np.linalg.norm(toward, axis=1) > min_distance
    out = dict(x_train=x_train, x_tilde=x_tilde, toward=toward, off=off, noise_stds=list(noise_stds),
               models=[], field=[], cosine=[], length_ratio=[], mean_cosine=[], median_length_ratio=[])
    for noise_std in noise_stds:
        ae = Autoencoder(2, hidden_dims=(64,), code_dim=16, activation="relu", noise_std=noise_std,
                         seed=seed)
        with one_blas_thread():
            fit(ae, x_train, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, progress=False)
        v, cosine, ratio = denoising_field(ae, x_tilde, toward)
        out["models"].append(ae)
        out["field"].append(v)
        out["cosine"].append(cosine)
        out["length_ratio"].append(ratio)
        out["mean_cosine"].append(float(cosine[off].mean()))
        out["median_length_ratio"].append(float(np.median(ratio[off])))
    return out


def plot_denoising_field(result, n_arrows=160):
    """One panel per noise level: the curve, the training points, noisy points x~ and arrows
    from x~ to g(f(x~)) (drawn at true length), with the mean cosine against the direction
    to the nearest curve point in the title (Goodfellow et al. fig. 14.4)."""
    x_tilde = result["x_tilde"][:n_arrows]
    t = np.linspace(-1.6, 1.6, 400)
    line = curve(t)
    panels = len(result["noise_stds"])
    fig = _figure(6.2 * panels, 4.8)
    axes = np.atleast_1d(fig.subplots(1, panels, sharex=True, sharey=True))
    for ax, noise_std, v, cos, ratio in zip(axes, result["noise_stds"], result["field"],
                                            result["mean_cosine"], result["median_length_ratio"]):
        _draw_curve(ax, result["x_train"], line)
        ax.scatter(*x_tilde.T, s=8, color="C3", zorder=3, label="noisy points x~")
        ax.quiver(x_tilde[:, 0], x_tilde[:, 1], v[:n_arrows, 0], v[:n_arrows, 1], angles="xy",
                  scale_units="xy", scale=1, width=0.0035, color="C0", zorder=4,
                  label="g(f(x~)) - x~")
        kind = f"denoising AE, noise_std = {noise_std:g}" if noise_std else "plain AE (no noise)"
        ax.set_title(f"{kind}\nmean cos(field, direction to curve) = {cos:.2f}, "
                     f"median |field| / distance = {ratio:.2f}", fontsize=10)
    return _plane_panels(fig, axes, "The denoising field g(f(x~)) - x~ points back to the data manifold "
                         "(Goodfellow et al. sec. 14.5, fig. 14.4)", fontsize=12)


def _draw_curve(ax, x_train, line):
    """The training points near the curve and the curve itself, in a panel of the plane."""
    ax.scatter(*x_train.T, s=2, color="0.75", label="training data x")
    ax.plot(*line.T, color="black", lw=1.2, label="manifold (t, 0.6 sin 2t)")


def _plane_panels(fig, axes, title, fontsize):
    """The frame shared by the panels of the curve in the plane: equal axes, grid, labels, legend."""
    for ax in axes:
        ax.set_xlabel("x_1")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("x_2")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=fontsize)
    return fig


# ============================================================================================
# lesson 4: contractive autoencoders (sec. 14.7)

def contractive_sweep(x_train, x_test, lambdas, code_dim=16, epochs=60, batch_size=64, lr=3e-3,
                      seed=0):
    """One single-layer tanh autoencoder per contractive weight lambda (eq. 14.18).

    Returns a dict of arrays over the lambdas:

        lambdas         (L,)
        jac_fro2        (L,)   mean over test x of ||J_f(x)||_F^2, J_f = dh/dx (C, D)
        singular_values (L, C) mean over test x of the singular values of J_f(x), descending
        rec             (L,)   test reconstruction error, mean 1/2 ||x - g(f(x))||^2
        rec_jac_fro2    (L,)   mean ||d g(f(x)) / dx||_F^2 (the decoder is affine: J_f^T W_d)
        gain            (L, D) mean over test x of ||J_r(x) v_k||, J_r = d g(f(x))/dx, for the
                               principal directions v_k of x_train (descending variance): how
                               much the reconstruction moves when x moves by one unit along v_k
        variance        (D,)   the variance of x_train along each v_k
        enc_norm, dec_norm (L,) ||W_e||_F and ||W_d||_F
        models          the L trained autoencoders
    """
    centred = np.asarray(x_train, dtype=np.float64) - np.mean(x_train, axis=0)
    _, s, V = np.linalg.svd(centred, full_matrices=False)                    # V (D, D): rows v_k
    out = {k: [] for k in ("jac_fro2", "singular_values", "rec", "rec_jac_fro2", "gain", "enc_norm",
                           "dec_norm", "models")}
    for lam in lambdas:
        ae = Autoencoder(x_train.shape[1], hidden_dims=(), code_dim=code_dim, activation="tanh",
                         loss="mse", contractive=lam, seed=seed)
        with one_blas_thread():
            fit(ae, x_train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
        J = ae.jacobian(x_test).astype(np.float64)                           # (N, C, D)
        W_d = ae.params["dec.W0"].astype(np.float64)                         # (C, D)
        J_r = np.einsum("ncd,ce->ned", J, W_d)                               # dr/dx (N, D, D)
        out["jac_fro2"].append(np.mean(np.sum(J ** 2, axis=(1, 2))))
        out["singular_values"].append(np.linalg.svd(J, compute_uv=False).mean(axis=0))
        out["rec"].append(reconstruction_error(ae, x_test))
        out["rec_jac_fro2"].append(np.mean(np.sum(J_r ** 2, axis=(1, 2))))
        out["gain"].append(np.linalg.norm(np.einsum("ned,kd->nke", J_r, V), axis=2).mean(axis=0))
        out["enc_norm"].append(np.linalg.norm(ae.params["enc.W0"]))
        out["dec_norm"].append(np.linalg.norm(W_d))
        out["models"].append(ae)
    result = {k: (v if k == "models" else np.array(v)) for k, v in out.items()}
    result["lambdas"] = np.asarray(lambdas, dtype=np.float64)
    result["variance"] = s ** 2 / max(len(centred) - 1, 1)
    result["code_dim"] = code_dim
    return result


def local_contraction(lambdas=(0.0, 0.1), code_dim=32, n_train=2000, epochs=300, n_points=200, seed=0):
    """Sec. 14.7 where it can be seen: tied-weight contractive autoencoders (Rifai et al. 2011)
    2 -> ``code_dim`` sigmoid units -> 2, on points near :func:`curve`, one per lambda.

    The code is overcomplete (32 units for 2 inputs), and with tied weights W_d = W_e^T the
    penalty cannot be met by shrinking the encoder while the decoder grows. At ``n_points``
    points x on the curve, the SVD of the encoder's Jacobian J(x) = dh/dx (C, 2) gives its
    singular values s_1 >= s_2 and right singular vectors v_1, v_2: the input directions the
    code is most and least sensitive to. Sec. 14.7: the penalty should keep s_1 along the
    manifold's tangent and push s_2, across it, toward 0. The reconstruction's Jacobian
    J_r = dr/dx = W_e J(x) (2, 2) says the same for g(f(x)): its gain ||J_r u|| along the
    tangent u and along the normal.

    Returns a dict: x_train (n_train, 2), points, tangent (n_points, 2), lambdas, models, and
    per lambda (lists): s (n_points, 2), v1 (n_points, 2), cosine |cos(v_1, tangent)|
    (n_points,), gain_tangent, gain_normal (n_points,), rec (mean ||x - g(f(x))||^2 / 2 on
    the training points)."""
    rng = np.random.default_rng(seed)
    x_train = curve(rng.uniform(-1.5, 1.5, n_train)) + 0.02 * rng.standard_normal((n_train, 2))
    t = np.linspace(-1.3, 1.3, n_points)
    points, tangent = curve(t), curve_tangent(t)                           # (n, 2) each
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)             # (n, 2)
    out = dict(x_train=x_train, points=points, tangent=tangent, lambdas=list(lambdas), models=[], s=[],
               v1=[], cosine=[], gain_tangent=[], gain_normal=[], rec=[])
    for lam in lambdas:
        ae = Autoencoder(2, hidden_dims=(), code_dim=code_dim, activation="sigmoid", loss="mse", tied=True,
                         contractive=lam, seed=seed)
        with one_blas_thread():
            fit(ae, x_train, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, progress=False)
        J = ae.jacobian(points).astype(np.float64)                           # (n, C, 2)
        _, s, Vt = np.linalg.svd(J)                                          # s (n, 2), Vt (n, 2, 2)
        J_r = np.einsum("dc,ncj->ndj", ae.params["enc.W0"].astype(np.float64), J)   # dr/dx (n, 2, 2)
        out["models"].append(ae)
        out["s"].append(s)
        out["v1"].append(Vt[:, 0, :])
        out["cosine"].append(np.abs(np.sum(Vt[:, 0, :] * tangent, axis=1)))
        out["gain_tangent"].append(np.linalg.norm(np.einsum("ndj,nj->nd", J_r, tangent), axis=1))
        out["gain_normal"].append(np.linalg.norm(np.einsum("ndj,nj->nd", J_r, normal), axis=1))
        out["rec"].append(reconstruction_error(ae, x_train))
    return out


def plot_local_contraction(result, n_ellipses=14):
    """One panel per lambda: the curve, the training points, and at points along the curve the
    ellipse with axes s_1 v_1 and s_2 v_2 of the encoder's Jacobian dh/dx (the input directions
    the code follows, drawn to scale), with the medians of s_2 / s_1 and |cos(v_1, tangent)|."""
    from matplotlib.patches import Ellipse
    panels = len(result["lambdas"])
    fig = _figure(6.2 * panels, 4.4)
    axes = np.atleast_1d(fig.subplots(1, panels, sharex=True, sharey=True))
    line = curve(np.linspace(-1.6, 1.6, 400))
    pick = np.linspace(0, len(result["points"]) - 1, n_ellipses).round().astype(int)
    scale = 0.15 / max(float(np.max(s[:, 0])) for s in result["s"])     # the largest s_1: 0.15 long
    for ax, lam, s, v1, cos in zip(axes, result["lambdas"], result["s"], result["v1"], result["cosine"]):
        _draw_curve(ax, result["x_train"], line)
        for i in pick:
            angle = np.degrees(np.arctan2(v1[i, 1], v1[i, 0]))
            ax.add_patch(Ellipse(result["points"][i], 2 * scale * s[i, 0], 2 * scale * s[i, 1], angle=angle,
                                 fc="C0", ec="C0", alpha=0.45))
        ratio = float(np.median(s[:, 1] / s[:, 0]))
        kind = f"tied CAE, lambda = {lam:g}" if lam else "tied AE, no penalty"
        ax.set_title(f"{kind}\nmedian s_2 / s_1 = {ratio:.2f}, mean |cos(v_1, tangent)| = "
                     f"{float(np.mean(cos)):.2f}", fontsize=10)
    return _plane_panels(fig, axes, "How the code h = f(x) responds to a step of x: ellipses with axes s_1 v_1, "
                         "s_2 v_2 of dh/dx (Goodfellow et al. sec. 14.7)", fontsize=11)


def plot_contractive_jacobian(result):
    """Left: the mean singular values of the encoder's Jacobian dh/dx per lambda. Middle: the
    squared Frobenius norms of dh/dx and of d g(f(x))/dx against the reconstruction error.
    Right: the gain ||d g(f(x))/dx v_k|| of the reconstruction along each principal direction
    v_k of the data."""
    lambdas = result["lambdas"]
    fig = _figure(17, 4.6)
    ax_s, ax_t, ax_g = fig.subplots(1, 3)
    for i, lam in enumerate(lambdas):
        sv = result["singular_values"][i]
        ax_s.plot(np.arange(1, len(sv) + 1), sv, "o-", ms=3, color=f"C{i}",
                  label=f"lambda = {lam:g}: ||J||_F^2 = {result['jac_fro2'][i]:.2f}")
    ax_s.set_xlabel("singular value index")
    ax_s.set_ylabel("singular value of dh/dx (mean over test x)")
    ax_s.set_title("how strongly the code h = f(x) follows each input direction", fontsize=10)
    ax_s.legend(fontsize=8)
    ax_s.grid(alpha=0.3)
    for key, label, style in (("jac_fro2", "encoder ||dh/dx||_F^2", "o-"),
                              ("rec_jac_fro2", "reconstruction ||d g(f(x))/dx||_F^2", "s--")):
        ax_t.plot(result["rec"], result[key], style, label=label)
        for i, lam in enumerate(lambdas):
            ax_t.annotate(f"{lam:g}", (result["rec"][i], result[key][i]), fontsize=7,
                          textcoords="offset points", xytext=(4, 3) if i % 2 == 0 else (4, -10))
    ax_t.set_yscale("log")
    _plain_log_labels(ax_t.yaxis)
    ax_t.set_xlabel("test reconstruction error, mean 1/2 ||x - g(f(x))||^2")
    ax_t.set_ylabel("squared Frobenius norm (mean over test x)")
    ax_t.set_title("contraction against reconstruction (labels: lambda)", fontsize=10)
    ax_t.legend(fontsize=8)
    ax_t.grid(alpha=0.3, which="both")
    for i, lam in enumerate(lambdas):
        gain = result["gain"][i]
        ax_g.plot(np.arange(1, len(gain) + 1), gain, "-", color=f"C{i}", label=f"lambda = {lam:g}")
    C = result["code_dim"]
    empty = int(np.argmax(result["variance"] < 1e-3)) + 1 if np.any(result["variance"] < 1e-3) else None
    ax_g.axvline(C + 0.5, color="0.4", ls=":", lw=1)
    ax_g.text(C + 1, 0.62, f"k > C = {C}: beyond the\ncode's rank", transform=ax_g.get_xaxis_transform(),
              va="top", fontsize=7, color="0.3", bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))
    if empty is not None:
        ax_g.axvspan(empty - 0.5, len(result["variance"]) + 0.5, color="0.9", zorder=0)
        ax_g.text(empty, 0.6, "variance\n< 1e-3", transform=ax_g.get_xaxis_transform(), fontsize=7,
                  color="0.3", bbox=dict(fc="0.9", ec="none", alpha=0.8, pad=1))
    ax_g.set_xlabel("principal direction v_k of the training digits (descending variance)")
    ax_g.set_ylabel("||d g(f(x))/dx v_k||  (mean over test x)")
    ax_g.set_title("how far the reconstruction moves per unit step of x along v_k", fontsize=10)
    ax_g.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.55, 1.0))
    ax_g.grid(alpha=0.3)
    fig.suptitle("Contractive autoencoder: Omega = lambda ||dh/dx||_F^2 (Goodfellow et al. eq. 14.18)",
                 fontsize=12)
    return fig


# ============================================================================================
# the registered figures

def _digits(ctx):
    from .data import load_dataset
    return ctx.get("figures_ae.digits", lambda: load_dataset("digits"))


def _pca_comparison(ctx):
    ds = _digits(ctx)
    if ctx.quick:
        make = lambda: pca_comparison(ds.x_train, ds.x_test, (2, 8), linear_schedule=LINEAR_SCHEDULE_QUICK,  # noqa: E731
                                      nonlinear_epochs=30, seed=ctx.seed)
    else:
        make = lambda: pca_comparison(ds.x_train, ds.x_test, (2, 4, 8, 16, 32), seed=ctx.seed)  # noqa: E731
    return ctx.get("figures_ae.pca_comparison", make)


@figure("linear_ae_vs_pca", "A linear autoencoder's decoder rows span the PCA subspace (principal "
        "angles near 0) in a different basis; a nonlinear autoencoder reconstructs digits better "
        "than PCA at the same code size (lesson 3).")
def fig_linear_ae_vs_pca(ctx):
    return plot_linear_ae_vs_pca(_pca_comparison(ctx), _digits(ctx).image_shape)


@figure("pca_vs_autoencoder_digits", "Test digits reconstructed from an 8-number code by "
        "PCA, a linear autoencoder (the same error) and a nonlinear autoencoder (lower error; lesson 3).")
def fig_pca_vs_autoencoder_digits(ctx):
    result, ds = _pca_comparison(ctx), _digits(ctx)
    i = list(result["code_dims"]).index(8)
    models = {f"{name}, k = 8": result["models"][key][i]
              for key, name in (("pca", "PCA"), ("linear", "linear AE"), ("nonlinear", "nonlinear AE"))}
    return plot_reconstruction_comparison(ds.x_test[:16], models, ds.image_shape,
                                          title="Test digits and their reconstructions from k = 8 numbers")


@figure("denoising_field", "Denoising autoencoder on a curve in the plane: the field g(f(x~)) - x~ "
        "points from noisy points back to the manifold; a plain overcomplete autoencoder learns "
        "nearly the identity, with short, weakly aimed arrows (lesson 4).")
def fig_denoising_field(ctx):
    result = ctx.get("figures_ae.denoising",
                     lambda: denoising_experiment(epochs=60, seed=ctx.seed))
    return plot_denoising_field(result)


@figure("sparse_codes", "Sparse autoencoder (128 relu code units on digits): the L1 penalty "
        "drives most code values to exactly zero, at some cost in reconstruction (lesson 4).")
def fig_sparse_codes(ctx):
    ds = _digits(ctx)
    lambdas = (0.0, 0.03, 0.3) if ctx.quick else (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)
    result = ctx.get("figures_ae.sparse", lambda: sparse_sweep(
        ds.x_train, ds.x_test, lambdas, epochs=15 if ctx.quick else 30, seed=ctx.seed))
    return plot_sparse_codes(result)


@figure("contractive_jacobian", "Contractive autoencoder on digits: the penalty shrinks the "
        "encoder's Jacobian dh/dx at almost the same reconstruction error; the reconstruction "
        "still follows the data's main directions but no longer the ones the digits never vary in (lesson 4).")
def fig_contractive_jacobian(ctx):
    ds = _digits(ctx)
    lambdas = (0.0, 0.01, 0.1) if ctx.quick else (0.0, 0.003, 0.01, 0.03, 0.1)
    result = ctx.get("figures_ae.contractive", lambda: contractive_sweep(
        ds.x_train, ds.x_test, lambdas, epochs=25 if ctx.quick else 60, seed=ctx.seed))
    return plot_contractive_jacobian(result)


@figure("local_contraction", "Contractive autoencoder with tied weights on a curve in the plane: "
        "the penalty leaves the code sensitive along the manifold's tangent and contracts it across "
        "(the local singular vectors of dh/dx, sec. 14.7; lesson 4).")
def fig_local_contraction(ctx):
    result = ctx.get("figures_ae.local", lambda: local_contraction(
        (0.0, 0.1), code_dim=16 if ctx.quick else 32, epochs=100 if ctx.quick else 300, seed=ctx.seed))
    return plot_local_contraction(result)
