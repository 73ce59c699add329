"""Figures of lessons 1-2 (dense backprop, gradient checking); registered with :func:`tinyvae.figures.figure`.

    activation_curves / plot_activations   lesson 1: each activation f(a) and its derivative f'(a),
                                           the derivative from the library's backward pass
    step_size_sweep / plot_step_size       lesson 2: the error of a central-difference gradient
                                           against the step h, float32 and float64 (a U shape)

The lessons call the same functions, so the lesson's numbers and the figure agree.

Why a U (lesson 2). The central difference of a loss L(theta) in one coordinate,

    n(h) = (L(theta + h) - L(theta - h)) / (2 h) = L'(theta) + h^2/6 L'''(theta) + O(h^4),

has a *truncation* error ~ h^2 that shrinks with h. But L is computed in floating point, each
value off by about eps |L| (eps = 2.2e-16 in float64, 1.2e-7 in float32), and that error is
divided by 2h: a *round-off* error ~ eps |L| / h that grows as h shrinks. The sum is smallest
near h* ~ eps^(1/3), where the error is ~ eps^(2/3): about 1e-10 in float64, 1e-4 in float32.
"""
import numpy as np
from matplotlib.figure import Figure

from .figures import figure
from .gradcheck import DEFAULT_H, numerical_gradient, relative_error
from .kernels import ACTIVATIONS
from .layers import activation_backward, activation_forward

DTYPE_STYLE = {"float64": ("C0", "o"), "float32": ("C3", "s")}


def _figure(width, height):
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------------------------
# lesson 1: activations and their derivatives

def activation_curves(a=None, kinds=ACTIVATIONS, h=1e-5):
    """f(a) and f'(a) for each activation, both from :mod:`tinyvae.layers`, and a check of f'.

    The derivative is what the backward pass computes: ``activation_backward(1, cache)``, i.e.
    dL/da for L = sum f(a); the check is the central difference (f(a + h) - f(a - h)) / 2h.
    Inputs: a (n,) grid (default -4..4). Returns {kind: (a, f, df, df_numeric)}, each (n,)."""
    a = np.linspace(-4, 4, 401) if a is None else np.asarray(a, dtype=np.float64)
    a2 = a.reshape(1, -1)                                       # (1, n): a batch of one row
    curves = {}
    for kind in kinds:
        f, cache = activation_forward(a2, kind)                 # h = f(a)      (1, n)
        df = activation_backward(np.ones_like(f), cache)        # f'(a) * 1     (1, n)
        numeric = (activation_forward(a2 + h, kind)[0] - activation_forward(a2 - h, kind)[0]) / (2 * h)
        curves[kind] = (a, f[0].copy(), df[0].copy(), numeric[0])
    return curves


def plot_activations(curves, title="Activations f(a) and the derivatives f'(a) their backward pass uses"):
    """Two panels: f(a) and f'(a) for each activation of ``curves`` (from :func:`activation_curves`),
    with the central differences of f as dots on the derivatives."""
    fig = _figure(11, 4.4)
    ax_f, ax_d = fig.subplots(1, 2)
    for i, (kind, (a, f, df, numeric)) in enumerate(curves.items()):
        style = dict(color=f"C{i}", lw=4.5 if kind == "relu" else 2, alpha=0.55 if kind == "relu" else 1,
                     ls="--" if kind == "identity" else "-", label=kind)
        ax_f.plot(a, f, **style)
        ax_d.plot(a, df, **style)
        pick = slice(12 + 3 * i, None, 25)                      # a few points, off the kink at 0
        ax_d.plot(a[pick], numeric[pick], ls="none", marker="o", ms=3.5, mfc="white", mec="k", mew=0.8,
                  label="central difference of f" if i == 0 else None)
    ax_f.set_ylim(-1.6, 4.2)
    ax_d.set_ylim(-0.1, 1.15)
    ax_f.set_title("forward: h = f(a)", fontsize=10)
    ax_d.set_title("backward: f'(a), written through h (tanh' = 1 - h², sigmoid' = h(1 - h), ...)",
                   fontsize=9)
    for ax, ylabel in ((ax_f, "h = f(a)"), (ax_d, "f'(a) = dh/da")):
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xlabel("pre-activation a")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax_f.legend(fontsize=8, loc="upper left")
    ax_d.legend(handles=ax_d.get_legend_handles_labels()[0][1:2], fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=11)
    return fig


# --------------------------------------------------------------------------------------------
# lesson 1: the computational graph of an MLP, with shapes

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _sub(i):
    return str(i).translate(_SUB)


def mlp_graph(mlp, batch="N"):
    """The nodes and edges of ``mlp``'s computational graph, for :func:`plot_mlp_graph`.

    Returns (nodes, edges): nodes a list of (label, shape) from x = h0 to the loss L; edges a
    list of (forward label, backward label, parameter-gradient label or "") between them,
    with the shapes of :class:`tinyvae.layers.MLP`'s parameters and cache."""
    nodes, edges = [("x = h" + _sub(0), (batch, mlp.sizes[0]))], []
    for i in range(mlp.n_layers):
        W, b, kind = mlp.layer(i)
        fan_in, fan_out = W.shape
        last = i == mlp.n_layers - 1
        nodes.append((f"a{_sub(i)}" + (" = out" if last and kind == "identity" else ""), (batch, fan_out)))
        edges.append((f"· W{_sub(i)} + b{_sub(i)}\nW{_sub(i)} {fan_in}×{fan_out},  b{_sub(i)} {fan_out}",
                      f"dh{_sub(i)} = da{_sub(i)} W{_sub(i)}ᵀ",
                      f"dW{_sub(i)} = h{_sub(i)}ᵀ da{_sub(i)}  {fan_in}×{fan_out}\n"
                      f"db{_sub(i)} = Σₙ da{_sub(i)}  {fan_out}"))
        if not (last and kind == "identity"):
            nodes.append((f"h{_sub(i + 1)}", (batch, fan_out)))
            edges.append((f"{kind}", f"da{_sub(i)} = dh{_sub(i + 1)} ⊙ f'(a{_sub(i)})\n(f' read off h{_sub(i + 1)})", ""))
    nodes.append(("L", ()))
    edges.append(("loss", "∂L/∂out\n(the upstream G)", ""))
    return nodes, edges


def plot_mlp_graph(mlp, batch="N", title=None):
    """The MLP as a chain of nodes: forward ops above the arrows (black), backward formulas below
    them (red), the parameter gradients under the dense layers, each node with its shape."""
    nodes, edges = mlp_graph(mlp, batch)
    n = len(nodes)
    fig = _figure(max(8.0, 1.95 * n), 3.3)
    ax = fig.add_subplot()
    xs = np.arange(n) * 2.0
    for x, (label, shape) in zip(xs, nodes):
        text = f"{label}\n{'scalar' if shape == () else '(' + ', '.join(map(str, shape)) + ')'}"
        ax.text(x, 0, text, ha="center", va="center", fontsize=9.5,
                bbox=dict(boxstyle="round,pad=0.4", fc="#e8f0fa" if label != "L" else "#fbe3e3", ec="0.3"))
    for x0, x1, (fwd, bwd, par) in zip(xs[:-1], xs[1:], edges):
        ax.annotate("", (x1 - 0.55, 0.18), (x0 + 0.55, 0.18), arrowprops=dict(arrowstyle="->", color="k", lw=1.3))
        ax.annotate("", (x0 + 0.55, -0.18), (x1 - 0.55, -0.18), arrowprops=dict(arrowstyle="->", color="C3", lw=1.3))
        mid = (x0 + x1) / 2
        ax.text(mid, 0.32, fwd, ha="center", va="bottom", fontsize=8)
        ax.text(mid, -0.32, bwd, ha="center", va="top", fontsize=8, color="C3")
        if par:
            ax.text(mid, -0.82, par, ha="center", va="top", fontsize=8, color="C2",
                    bbox=dict(boxstyle="round,pad=0.25", fc="#eef8ee", ec="C2", lw=0.6))
    ax.text(xs[0] - 0.9, 0.62, "forward →", fontsize=9, ha="left")
    ax.text(xs[0] - 0.9, -0.62, "← backward", fontsize=9, ha="left", color="C3", va="top")
    ax.set_xlim(xs[0] - 1.0, xs[-1] + 0.8)
    ax.set_ylim(-1.4, 0.9)
    ax.set_xlabel(f"the chain of {mlp!r}; dX means dL/dX, with the same shape as X")
    ax.set_ylabel("forward / backward")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title or "Backprop through an MLP: every node's shape, and the formula that computes its gradient",
                 fontsize=11)
    return fig


# --------------------------------------------------------------------------------------------
# lesson 2: the error of a central difference against the step size

STEP_SIZES = np.logspace(-10, 0, 41)       # 4 per decade


def step_size_errors(model, args, name, hs):
    """The gradient checker's relative error for parameter array ``name`` at each step size h.

    ``model`` has ``params`` and ``loss_and_grads(*args)``; its analytic gradient is compared
    with :func:`tinyvae.gradcheck.numerical_gradient` (central differences) by
    :func:`tinyvae.gradcheck.relative_error`. Works in the model's own dtype (float32 too:
    theta +- h is then rounded to float32, part of the round-off). Returns errors (len(hs),)."""
    _, grads = model.loss_and_grads(*args)
    analytic = np.array(grads[name], dtype=np.float64, copy=True)

    def loss():
        return float(model.loss_and_grads(*args)[0])

    return np.array([relative_error(analytic, numerical_gradient(loss, model.params[name], h))
                     for h in hs])


def step_size_sweep(x=None, hs=None, name="dec.W0", hidden_dims=(16,), latent_dim=2,
                    activation="tanh", n=16, seed=0):
    """The same VAE in float64 and float32, its gradient checked at every step size h.

    A Bernoulli VAE with ``activation`` (tanh: smooth, so no relu kink spoils the h^2 law) on
    the first ``n`` rows of x (default: the digits), eps fixed. Returns a dict:

        h              (H,)   the step sizes
        errors         {"float64": (H,), "float32": (H,)}  relative errors of array ``name``
        eps            {"float64": 2.2e-16, "float32": 1.2e-7}  machine epsilons
        best_h, best_error   {dtype: float}  the bottom of each U
        loss, grad_max       |L| and max|dL/d name| (float64): they set the round-off scale
        truncation     C with error ~ C h^2, fitted to float64 where truncation dominates
        roundoff       K with error ~ eps K / h, K = |L| / (2 max|g|): the round-off estimate
        name, model    the array checked and a description of the model
    """
    from .data import load_dataset
    from .vae import VAE
    if x is None:
        x = load_dataset("digits").x_train
    x = np.asarray(x, dtype=np.float64)[:n]                            # (n, D)
    hs = STEP_SIZES if hs is None else np.asarray(hs, dtype=np.float64)
    eps = np.random.default_rng([seed, 1]).standard_normal((x.shape[0], latent_dim))   # (n, Z)
    config = dict(hidden_dims=hidden_dims, latent_dim=latent_dim, activation=activation, seed=seed)
    m64 = VAE(x.shape[1], dtype="float64", **config)
    m32 = VAE(x.shape[1], dtype="float32", **config)
    m32.flat[...] = m64.flat                                           # the same parameters, rounded
    out = {"h": hs, "errors": {}, "eps": {}, "best_h": {}, "best_error": {}, "name": name}
    for model in (m64, m32):
        dt = model.dtype
        errors = step_size_errors(model, (x.astype(dt), eps.astype(dt)), name, hs)
        i = int(np.argmin(errors))
        out["errors"][dt.name], out["eps"][dt.name] = errors, float(np.finfo(dt).eps)
        out["best_h"][dt.name], out["best_error"][dt.name] = float(hs[i]), float(errors[i])
    loss, grads = m64.loss_and_grads(x, eps)
    out["loss"], out["grad_max"] = abs(float(loss)), float(np.max(np.abs(grads[name])))
    out["roundoff"] = out["loss"] / (2 * out["grad_max"])
    e64 = out["errors"]["float64"]
    trunc = (hs >= 10 * out["best_h"]["float64"]) & (e64 < 1e-2)       # right arm of the float64 U
    out["truncation"] = float(np.median(e64[trunc] / hs[trunc] ** 2)) if trunc.any() else np.nan
    out["model"] = (f"Bernoulli VAE {x.shape[1]}-{'-'.join(map(str, hidden_dims))}-{latent_dim}, "
                    f"{activation}, {x.shape[0]} images")
    return out


def plot_step_size(sweep, title=None):
    """Log-log plot of :func:`step_size_sweep`: one U per dtype, the truncation line C h^2,
    the round-off lines eps K / h, the bottom of each U, and the checker's default h."""
    h = sweep["h"]
    fig = _figure(8.5, 6.4)
    ax = fig.add_subplot()
    C, K = sweep["truncation"], sweep["roundoff"]
    ax.loglog(h, C * h ** 2, color="k", ls="--", lw=1.2,
              label=f"truncation ≈ C h²  (same for both dtypes; C = {C:.2g} fitted)")
    for dt in ("float64", "float32"):
        colour, marker = DTYPE_STYLE[dt]
        eps = sweep["eps"][dt]
        ax.loglog(h, eps * K / h, color=colour, ls=":", lw=1.5,
                  label=f"round-off ≈ eps |L| / (2h max|g|),  eps = {eps:.1e}")
        ax.loglog(h, sweep["errors"][dt], color=colour, marker=marker, ms=4, lw=1.8,
                  label=f"{dt}: measured")
        bh, be = sweep["best_h"][dt], sweep["best_error"][dt]
        ax.plot([bh], [be], marker="*", ms=16, color=colour, mec="k", zorder=5)
        ax.annotate(f"{dt} best:\nh = {bh:.0e}, error = {be:.0e}", (bh, be), xytext=(10, -8),
                    textcoords="offset points", ha="left", va="top", fontsize=8.5, color=colour,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    if h[0] <= DEFAULT_H <= h[-1]:                      # a sweep elsewhere would put the note off the axes
        ax.axvline(DEFAULT_H, color="0.5", lw=1)
        ax.text(DEFAULT_H * 1.15, 3e-13, f"tinyvae's\ndefault h = {DEFAULT_H:g}", fontsize=8, color="0.35")
    ax.axhline(1e-7, color="0.5", lw=0.8, ls="-.")
    ax.text(h[-1], 1.4e-7, "pass/fail tolerance 1e-7 (float64)", fontsize=8, color="0.35", ha="right")
    ax.set_xlim(h[0] / 1.5, h[-1] * 1.5)
    ax.set_ylim(1e-13, 5)
    ax.set_xlabel("step size h")
    ax.set_ylabel("relative error  max|a - n| / (max|a| + max|n|)")
    ax.set_title(title or ("Central differences (L(θ+h) - L(θ-h)) / 2h: error against step size\n"
                           f"gradient of {sweep['name']}, {sweep['model']}"), fontsize=10)
    ax.grid(alpha=0.3, which="major")
    fig.legend(fontsize=8, loc="outside lower center", ncol=2)
    return fig


# --------------------------------------------------------------------------------------------
# the registered figures

@figure("activations", "Each activation f(a) and its derivative f'(a), as the backward pass computes it from h = f(a) (lesson 1).")
def fig_activations(ctx):
    return plot_activations(activation_curves())


@figure("backprop_graph", "The computational graph of a 64-32-16-8 tanh MLP: forward ops, backward formulas and the shape of every node and gradient (lesson 1).")
def fig_backprop_graph(ctx):
    from .layers import MLP
    return plot_mlp_graph(MLP((64, 32, 16, 8), "tanh", seed=ctx.seed))


@figure("gradcheck_step_size", "Gradient-check error against the finite-difference step h for a VAE in float64 and float32: truncation ~h² on the right, round-off ~eps/h on the left (lesson 2).")
def fig_gradcheck_step_size(ctx):
    def make():
        from .data import load_dataset
        x = load_dataset("digits").x_train
        if ctx.quick:
            return step_size_sweep(x, hs=np.logspace(-10, 0, 21), n=8, seed=ctx.seed)
        return step_size_sweep(x, hs=np.logspace(-10, 0, 61), n=64, hidden_dims=(32,), seed=ctx.seed)
    return plot_step_size(ctx.get("figures_backprop.step_size_sweep", make))


__all__ = ["activation_curves", "plot_activations", "mlp_graph", "plot_mlp_graph", "STEP_SIZES", "step_size_errors",
           "step_size_sweep", "plot_step_size"]
