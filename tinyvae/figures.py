"""The figures of the chapter, and ``tinyvae figures [--quick] [--out DIR]`` that redraws them.

Each figure is a function ``fig_<name>(ctx) -> matplotlib Figure`` registered with
:func:`figure` under a file name and a one-line caption. ``ctx`` (a :class:`Context`) says
whether this is a quick run (small data, few epochs: for tests) and caches what several
figures share (datasets, trained models), so each model is trained once per run. Figure
functions compute with the library and plot; the lessons call the same plotting functions
on the numbers they computed cell by cell.

The committed ``figures/`` come from a full run; ``figures/README.md`` lists each file with
its caption.
"""
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .errors import TinyVAEError  # noqa: E402


class Context:
    """Options of one figures run, and a cache of the data and models figures share."""

    def __init__(self, quick=False, seed=0, progress=False):
        self.quick, self.seed, self.progress = bool(quick), int(seed), progress
        self._cache = {}

    def get(self, key, make):
        """``make()`` once per key and run; later calls return the cached value."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


FIGURES = []          # (file name without .png, caption, function)


def figure(name, caption):
    """Register ``fn(ctx) -> Figure`` as figure ``name`` with a one-line ``caption``."""
    def register(fn):
        FIGURES.append((name, caption, fn))
        return fn
    return register


# ==============================================================================================
# The figures themselves live beside the lessons they illustrate; importing a module registers
# its figures, in this order (the order of the chapter).
#
#   figures_backprop   lessons 1-2: backprop by hand, gradient checking
#   figures_ae         lessons 3-4: undercomplete and regularized autoencoders
#   figures_elbo       lessons 5-7: latent-variable model, ELBO, reparameterization
#   figures_vae        lesson 8:    training a VAE (reconstructions, samples, latents, beta)

from . import figures_backprop, figures_ae, figures_elbo, figures_vae  # noqa: E402,F401


# ==============================================================================================
# the command

def make_figures(out, quick=False, only=None, seed=0, log=print):
    """Draw every registered figure (or those named in ``only``) into ``out`` as PNG files and
    write ``out/README.md`` with the captions. Returns the list of paths written."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TinyVAEError(f"the seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyVAEError(f"--out {out} is a file; give a directory for the figures")
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n, _, _ in FIGURES]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise TinyVAEError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(names)}")
    ctx = Context(quick=quick, seed=seed)
    written = []
    for name, caption, fn in FIGURES:
        if only and name not in only:
            continue
        start = time.perf_counter()
        fig = fn(ctx)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
        log(f"{path}  ({time.perf_counter() - start:.1f} s)")
    lines = ["# Figures", "", "Drawn by `tinyvae figures" + (" --quick" if quick else "") + "`; never edited by hand.", ""]
    for name, caption, _ in FIGURES:
        if (out / f"{name}.png").exists():
            lines.append(f"- `{name}.png`: {caption}")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


def _cmd_figures(args):
    only = [s for s in (args.only or "").split(",") if s]
    from .commands import nonneg_int
    make_figures(args.out, quick=args.quick, only=only or None, seed=nonneg_int("--seed", args.seed))
    return 0


def register(sub):
    p = sub.add_parser("figures", help="redraw the chapter's figures (PNG) into a folder")
    p.add_argument("--quick", action="store_true", help="small data and few epochs (seconds, not minutes)")
    p.add_argument("--out", default="figures", help="the folder to write (default: figures)")
    p.add_argument("--only", default="", help="comma-separated figure names to draw")
    p.add_argument("--seed", default="0", help="seed of every random stream (default 0)")
    p.set_defaults(func=_cmd_figures)
