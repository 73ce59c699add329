"""Figures of the VAE lessons (5-8) that :mod:`tinyvae.plots` does not draw.

    plot_likelihood_estimates   lesson 5: naive Monte Carlo vs importance sampling for log p(x)
    plot_elbo_gap               lesson 6: log p(x) = ELBO + KL(q || p(z|x)), and the KL by Monte Carlo
    plot_gradient_variance      lesson 7: reparameterization vs score-function gradients
    plot_kl_per_dimension_beta  lesson 8: KL per latent dimension and active units as beta grows
    plot_iwae_bound             lesson 8: the importance-weighted bound tightening with k

Each takes numbers computed by :mod:`tinyvae.estimators` / :mod:`tinyvae.recipes` and returns
a ``matplotlib.figure.Figure`` (built without pyplot, like :mod:`tinyvae.plots`) with a title
and labelled axes. The lessons and ``tinyvae figures`` call the same functions.
"""
import numpy as np
from matplotlib.figure import Figure

METHOD_STYLE = {   # gradient estimator -> (label, colour)
    "reparameterization": ("reparameterization, eq. (6)", "C0"),
    "score": ("score function (REINFORCE), eq. (7)", "C3"),
    "score_baseline": ("score function, baseline b = f(mu)", "C1"),
}

SHORT_LABEL = {"reparameterization": "reparameterization", "score": "score function",
               "score_baseline": "score function + baseline"}


def _figure(width, height):
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------------------------
# lesson 5

def plot_likelihood_estimates(results, title="Estimating log p(x) = log ∫ p(x|z) p(z) dz by sampling"):
    """Three panels against the number of samples k (log axis): the error of the naive estimate
    (z ~ p(z)), the error of the importance-sampled estimate (z ~ q(z|x)), and the naive
    estimate's effective sample size.

    Inputs: results, a dict label -> (estimates, exact) with ``estimates`` from
    :func:`tinyvae.estimators.estimates_versus_k` and ``exact`` the true log p(x) (N,)."""
    fig = _figure(14, 4.4)
    ax_naive, ax_is, ax_ess = fig.subplots(1, 3)
    for i, (label, (est, exact)) in enumerate(results.items()):
        k, colour = est["k"], f"C{i}"
        for ax, key in ((ax_naive, "naive"), (ax_is, "importance")):
            err = est[key] - exact                                   # (K, N)
            ax.plot(k, err.mean(axis=1), "o-", color=colour, label=label)
            lo, hi = np.percentile(err, [10, 90], axis=1)
            ax.fill_between(k, lo, hi, color=colour, alpha=0.15, lw=0)
        ax_ess.plot(k, np.median(est["naive_ess"], axis=1), "o-", color=colour, label=label)
    kmax = max(est["k"].max() for est, _ in results.values())
    ax_ess.plot([1, kmax], [1, kmax], ls=":", color="gray", label="ESS = k (ideal)")
    for ax, name in ((ax_naive, "naive: z ~ p(z)"), (ax_is, "importance sampling: z ~ q(z|x)")):
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("samples k")
        ax.set_ylabel("estimate - exact log p(x)  (nats)")
        ax.set_title(name, fontsize=11)
        ax.grid(alpha=0.3)
    ax_naive.legend(fontsize=9, title="latent dimension", title_fontsize=9)
    ax_is.text(0.98, 0.04, "lines: mean over test images\nbands: 10-90% of images",
               transform=ax_is.transAxes, ha="right", va="bottom", fontsize=8, color="0.3")
    ax_ess.set_xscale("log")
    ax_ess.set_yscale("log")
    ax_ess.set_xlabel("samples k")
    ax_ess.set_ylabel("effective sample size (median over images)")
    ax_ess.set_title("naive: how many samples count", fontsize=11)
    ax_ess.grid(alpha=0.3, which="both")
    ax_ess.legend(fontsize=9)
    fig.suptitle(title, fontsize=13)
    return fig


# --------------------------------------------------------------------------------------------
# lesson 6

def plot_elbo_gap(log_px, elbo, kl_samples=None, kl_closed=None, history=None, best_kl=None,
                  title="log p(x) = ELBO + KL(q(z|x) || p(z|x)) on the linear-Gaussian VAE"):
    """Left: for each example (sorted by log p(x)), the exact log p(x), the exact ELBO below it
    and the gap between them, KL(q || p(z|x)); ``elbo`` is an (N,) array or a dict
    {encoder label: (N,) ELBOs} to compare encoders. Next (when ``kl_samples`` is given): the running
    Monte Carlo mean of log q(z|x) - log p(z) for one example against the closed form of
    KL(q || p(z)), with a band of +-2 standard errors. Last (when ``history`` is given, the dict
    of :func:`tinyvae.recipes.refit_encoder`): the gap log p(x) - ELBO and KL(q || p(z|x)) as a
    fresh encoder is fitted, on a log axis, with ``best_kl`` (the best diagonal q) marked."""
    log_px = np.asarray(log_px, dtype=np.float64)
    elbos = elbo if isinstance(elbo, dict) else {"": elbo}
    two = kl_samples is not None
    n_panels = 1 + two + (history is not None)
    fig = _figure({1: 7.5, 2: 13, 3: 19}[n_panels], 4.8)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    ax = axes[0]
    order = np.argsort(log_px)
    n = np.arange(1, len(order) + 1)
    width = 0.5 / len(elbos)
    for i, (label, e) in enumerate(elbos.items()):
        e = np.asarray(e, dtype=np.float64)[order]
        at = n + (i - (len(elbos) - 1) / 2) * width                  # side by side per image
        colour = ("C2", "C1", "C4", "C5")[i % 4]
        which = f" ({label})" if label else ""
        ax.vlines(at, e, log_px[order], color="C3", lw=2.5, alpha=0.55,
                  label="gap = KL(q(z|x) || p(z|x))" if i == 0 else None)
        ax.plot(at, e, "s", color=colour, ms=5, zorder=3, label=f"ELBO{which}, exact expectation")   # above log p(x)
    ax.plot(n, log_px[order], "_", color="C0", ms=float(np.clip(220 / len(n), 6, 22)), mew=2.5,
            label="log p(x), exact")
    ax.set_xlabel("test image (sorted by log p(x))")
    ax.set_ylabel("nats")
    ax.set_title("the ELBO is below log p(x) by the KL to the true posterior", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    if two:
        ax = axes[1]
        s = np.asarray(kl_samples, dtype=np.float64)
        S = np.arange(1, len(s) + 1)
        running = np.cumsum(s) / S
        sd = np.std(s, ddof=1)
        ax.fill_between(S, running - 2 * sd / np.sqrt(S), running + 2 * sd / np.sqrt(S), color="C0", alpha=0.2,
                        lw=0, label="+- 2 standard errors")
        ax.plot(S, running, color="C0", label="Monte Carlo mean of log q(z|x) - log p(z)")
        if kl_closed is not None:
            ax.axhline(kl_closed, color="black", ls="--", label=f"closed form (K&W app. B): {kl_closed:.4f}")
        ax.set_xscale("log")
        ax.set_xlabel("samples S of z ~ q(z|x)")
        ax.set_ylabel("KL(q(z|x) || p(z))  (nats)")
        vs = " vs closed form" if kl_closed is not None else ""
        ax.set_title(f"KL to the prior: Monte Carlo{vs} (one image)", fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    if history is not None:
        ax = axes[-1]
        step = np.asarray(history["step"])
        gap = np.asarray(history["log_px"]) - np.asarray(history["elbo"])
        ax.plot(step, gap, color="C3", lw=2, label="log p(x) - ELBO")
        every = max(1, len(step) // 25)
        ax.plot(step[::every], np.asarray(history["kl"])[::every], "o", color="black", ms=3.5,
                label="KL(q(z|x) || p(z|x)), exact")
        if best_kl is not None:
            ax.axhline(best_kl, color="C2", ls="--", label=f"best diagonal q (closed form): {best_kl:.1e}")
        ax.set_yscale("log")
        ax.set_xlabel("Adam steps on the encoder (decoder frozen)")
        ax.set_ylabel("mean gap over test images (nats, log scale)")
        ax.set_title(f"a fresh encoder fitted by the ELBO; mean log p(x) = {history['log_px'][0]:.2f} fixed",
                     fontsize=11)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    fig.suptitle(title, fontsize=13)
    return fig


# --------------------------------------------------------------------------------------------
# lesson 7

def plot_gradient_variance(settings, title="Gradient of E_q[f(z)] w.r.t. (mu, log sigma^2): "
                                           "reparameterization vs score function"):
    """One row per setting: left, the standard deviation of the n-sample estimate against n
    (log-log; root mean square over the 2Z coordinates); right, histograms of one-sample
    estimates of d/dmu_1 with the exact (or a precise) gradient marked.

    Inputs: settings, a list of dicts with keys ``name``, ``ns``, ``curve`` (from
    :func:`tinyvae.estimators.gradient_std_curve`), ``one_sample`` ({method: (S, 2Z)} from
    :func:`tinyvae.estimators.per_sample_gradients`) and ``exact`` ((2Z,) or None)."""
    rows = len(settings)
    fig = _figure(13, 4.3 * rows)
    axes = fig.subplots(rows, 2, squeeze=False)
    for (ax_std, ax_hist), s in zip(axes, settings):
        ns = np.asarray(s["ns"])
        for method, c in s["curve"].items():
            label, colour = METHOD_STYLE[method]
            rms = np.sqrt(np.mean(c["std"] ** 2, axis=1))
            ax_std.plot(ns, rms, "o-", color=colour, label=label)
        first = s["curve"].get("reparameterization") or next(iter(s["curve"].values()))   # a 1/sqrt(n) guide
        ref = np.sqrt(np.mean(first["std"][0] ** 2))
        ax_std.plot(ns, 0.5 * ref / np.sqrt(ns / ns[0]), ":", color="gray",      # below, not on top
                    label="∝ 1/sqrt(n) (slope guide)")
        ax_std.set_xscale("log")
        ax_std.set_yscale("log")
        ax_std.set_xlabel("samples n per estimate")
        ax_std.set_ylabel("std of the estimate (RMS over coordinates)")
        ax_std.set_title(f"{s['name']}: spread against n", fontsize=11)
        ax_std.grid(alpha=0.3, which="both")
        ax_std.legend(fontsize=8)

        samples = {m: g[:, 0] for m, g in s["one_sample"].items()}
        lo = min(np.percentile(v, 1) for v in samples.values())
        hi = max(np.percentile(v, 99) for v in samples.values())
        bins = np.linspace(lo, hi, 80)
        for method in sorted(samples, key=lambda m: -np.std(samples[m])):
            label, colour = METHOD_STYLE[method]
            v = samples[method]
            ax_hist.hist(v, bins=bins, density=True, color=colour, histtype="step", lw=2,
                         label=f"{SHORT_LABEL[method]}: std {np.std(v):.3g}")     # outlines: no blended colours
        if s.get("exact") is not None:
            ax_hist.axvline(s["exact"][0], color="black", ls="--", label=f"exact: {s['exact'][0]:.3g}")
        ax_hist.set_yscale("log")
        ax_hist.set_xlabel("one-sample estimate of dE_q[f]/dmu_1 (1st-99th percentiles shown; std of all)")
        ax_hist.set_ylabel("density (log scale)")
        ax_hist.set_title(f"{s['name']}: one-sample estimates", fontsize=11)
        ax_hist.legend(fontsize=8)
    fig.suptitle(title, fontsize=13)
    return fig


# --------------------------------------------------------------------------------------------
# lesson 8

def plot_kl_per_dimension_beta(sweep, title=None):
    """Posterior collapse as beta grows. Left: a heat map of KL(q(z_j|x) || N(0,1)) per latent
    dimension (sorted, largest first) for each beta. Middle: active units. Right: the two
    terms of the loss, reconstruction and KL, against beta.

    Inputs: sweep, the dict of :func:`tinyvae.recipes.beta_sweep`."""
    betas, kl = sweep["betas"], np.sort(sweep["kl_per_dim"], axis=1)[:, ::-1]      # (B, Z)
    B, Z = kl.shape
    fig = _figure(15, 4.6)
    ax_map, ax_au, ax_terms = fig.subplots(1, 3, width_ratios=[1.5, 1, 1])
    im = ax_map.imshow(kl, cmap="magma", aspect="auto", vmin=0)
    for b in range(B):
        for j in range(Z):
            v = kl[b, j]
            ax_map.text(j, b, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if v > 0.6 * kl.max() else "white")
    ax_map.set_xticks(range(Z))
    ax_map.set_xticklabels([str(j + 1) for j in range(Z)])
    ax_map.set_yticks(range(B))
    ax_map.set_yticklabels([f"{b:g}" for b in betas])
    ax_map.set_xlabel("latent dimension (sorted by KL, largest first)")
    ax_map.set_ylabel("beta")
    ax_map.set_title("KL(q(z_j|x) || N(0,1)) per dimension (nats)", fontsize=11)
    fig.colorbar(im, ax=ax_map, label="nats", shrink=0.9)

    x = np.arange(B)
    ax_au.bar(x, sweep["active_units"], color="C0", alpha=0.8)
    for xi, a in zip(x, sweep["active_units"]):
        ax_au.text(xi, a + 0.1, str(int(a)), ha="center", va="bottom", fontsize=10)
    ax_au.set_xticks(x)
    ax_au.set_xticklabels([f"{b:g}" for b in betas])
    ax_au.set_ylim(0, Z + 1)
    ax_au.set_xlabel("beta")
    ax_au.set_ylabel(f"active units (of {Z})")
    ax_au.set_title("active units: Var_x[mu_j(x)] > 0.01", fontsize=11)
    ax_au.grid(alpha=0.3, axis="y")

    # the betas at evenly spaced places, as in the middle panel: a log axis would drop beta = 0
    ax_terms.plot(x, sweep["rec"], "o-", color="C0", label="reconstruction -E_q[log p(x|z)]")
    ax_terms.set_xticks(x)
    ax_terms.set_xticklabels([f"{b:g}" for b in betas])
    ax_terms.set_xlabel("beta")
    ax_terms.set_ylabel("reconstruction (nats)", color="C0")
    ax2 = ax_terms.twinx()
    ax2.plot(x, sweep["kl"], "s--", color="C3", label="KL(q(z|x) || p(z))")
    ax2.set_ylabel("KL (nats)", color="C3")
    ax_terms.set_title("the two terms of the loss rec + beta KL", fontsize=11)
    ax_terms.grid(alpha=0.3)
    lines = ax_terms.get_lines()[:1] + ax2.get_lines()[:1]
    ax_terms.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="center right")
    fig.suptitle(title or f"beta-VAE and posterior collapse ({Z} latent dimensions)", fontsize=13)
    return fig


def plot_iwae_bound(ks, iwae, elbo, title="The importance-weighted bound tightens with k", elbo_k=None):
    """The IWAE estimate of log p(x) against k (log axis), beside the ELBO.

    Left: the mean over images of IWAE_k, with the mean ELBO as a line. Right (when ``elbo``
    is per image): the mean gain IWAE_k - ELBO with +-2 standard errors of the per-image
    differences (paired, so the spread between images cancels). With ``elbo_k`` (K, N), the
    ELBO estimated from the same k draws as each IWAE_k, the gain subtracts that instead: the
    same expectation, without the noise of separate draws (0 at k = 1, never negative).

    Inputs: ks (K,); iwae (K, N) estimates; elbo (N,) or a float: the mean ELBO."""
    ks = np.asarray(ks)
    iwae = np.asarray(iwae, dtype=np.float64)                                  # (K, N)
    elbo = np.asarray(elbo, dtype=np.float64)
    paired = elbo.ndim == 1 and elbo.shape[0] == iwae.shape[1]
    fig = _figure(12.5 if paired else 6.8, 4.6)
    axes = fig.subplots(1, 2 if paired else 1, squeeze=False)[0]
    ax = axes[0]
    mean_elbo = float(np.mean(elbo))
    ax.plot(ks, iwae.mean(axis=1), "o-", color="C0", label="IWAE_k = log 1/k sum_i p(x, z_i) / q(z_i|x)")
    ax.axhline(mean_elbo, color="C3", ls="--", label=f"ELBO = E_q[log p(x, z) / q(z|x)]: {mean_elbo:.2f}")
    if elbo_k is not None:        # the ELBO from IWAE_k's own draws: IWAE_1 is one such noisy estimate
        ax.plot(ks, np.mean(elbo_k, axis=1), "s:", color="C3", ms=4,
                label="the ELBO estimated from the same k draws")
    ax.set_xscale("log")
    ax.set_xlabel("importance samples k  (z_i ~ q(z|x))")
    ax.set_ylabel(f"mean over {iwae.shape[1]} test images (nats)")
    ax.set_title("the bound on log p(x)", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="center right")
    if paired:
        ax = axes[1]
        same_draws = elbo_k is not None
        gain = iwae - (np.asarray(elbo_k, dtype=np.float64) if same_draws else elbo)   # (K, N)
        mean = gain.mean(axis=1)
        se = gain.std(axis=1, ddof=1) / np.sqrt(gain.shape[1])
        ax.errorbar(ks, mean, yerr=2 * se, fmt="o-", color="C0", capsize=3,
                    label="mean over images +- 2 standard errors")
        ax.axhline(0, color="C3", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("importance samples k")
        ax.set_ylabel("IWAE_k - ELBO from the same k draws (nats)" if same_draws else "IWAE_k - ELBO (nats)")
        ax.set_title("how much tighter than the ELBO", fontsize=11)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9, loc="lower right")
    fig.suptitle(title, fontsize=12)
    return fig


__all__ = ["plot_likelihood_estimates", "plot_elbo_gap", "plot_gradient_variance",
           "plot_kl_per_dimension_beta", "plot_iwae_bound"]
