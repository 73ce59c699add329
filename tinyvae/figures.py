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
import importlib
import time
from pathlib import Path

# No matplotlib.use("Agg") here: the figures are built without pyplot (and saved without a
# display), and a backend set on import would have switched a notebook's kernel away from
# its inline figures for everything after it.
from .errors import TinyVAEError
from .model import check_seed


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


FIGURES = []          # (file name without .png, caption, function), in the chapter's order
CHAPTER = ("figures_backprop", "figures_ae", "figures_elbo", "figures_vae")   # see below
_registered = {}      # function -> registration number, to keep each module's own order


def figure(name, caption):
    """Register ``fn(ctx) -> Figure`` as figure ``name`` with a one-line ``caption``.

    FIGURES stays in the chapter's order (CHAPTER, then each module's own) whatever order the
    modules are imported in: importing figures_backprop first registers its figures last, since
    it imports this module, which imports the other three before figures_backprop is done."""
    def register(fn):
        _registered[fn] = len(_registered)
        FIGURES.append((name, caption, fn))
        FIGURES.sort(key=_chapter_order)
        return fn
    return register


def _chapter_order(entry):
    module = entry[2].__module__.rpartition(".")[2]
    return (CHAPTER.index(module) if module in CHAPTER else len(CHAPTER), _registered[entry[2]])


# ==============================================================================================
# The figures themselves live beside the lessons they illustrate; importing a module registers
# its figures, in the order of CHAPTER (the order of the chapter; a new module of figures is
# added there, and a test checks that every tinyvae/figures_*.py is).
#
#   figures_backprop   lessons 1-2: backprop by hand, gradient checking
#   figures_ae         lessons 3-4: undercomplete and regularized autoencoders
#   figures_elbo       lessons 5-7: latent-variable model, ELBO, reparameterization
#   figures_vae        lesson 8:    training a VAE (reconstructions, samples, latents, beta)

for _module in CHAPTER:
    importlib.import_module(f"{__package__}.{_module}")


# ==============================================================================================
# the command

README_HEADER = ("# Figures", "Drawn by `tinyvae figures")     # the first lines of the README it writes
QUICK_OUT = "figures-quick"          # --quick's default folder: the full-size figures/ is never touched


def _drawn_by_us(folder):
    """How ``folder/README.md`` says :func:`make_figures` drew the folder: "quick", "full", or
    None if that README is not one it wrote."""
    try:
        lines = [ln for ln in (folder / "README.md").read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < 2 or lines[0].strip() != README_HEADER[0] or not lines[1].startswith(README_HEADER[1]):
        return None
    return "quick" if lines[1].startswith(README_HEADER[1] + " --quick`") else "full"


def check_out_dir(out, quick=False, only=None):
    """``out`` as a Path it is safe to draw into, or a TinyVAEError; nothing is created.

    Safe: a directory that does not exist yet (under a directory), an empty one, or one that
    ``tinyvae figures`` wrote before (its README.md starts with the header written below), whose
    figures and README may be replaced. Anything else would overwrite files that are not ours.
    A folder holds figures of one kind, so its README can say how they were drawn: quick
    figures (``quick``) never go into a folder of full-size ones, such as the committed
    ``figures/``, and some full-size ones (``only``) never go among quick ones."""
    if str(out).strip() == "":
        raise TinyVAEError("--out is empty; give the directory to draw the figures into, such as figures")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyVAEError(f"--out {out} is a file; give a directory for the figures")
    if out.is_dir():
        try:
            empty = not any(out.iterdir())
        except OSError as e:
            raise TinyVAEError(f"--out {out} cannot be read ({e.strerror or e}); choose another directory") from None
        drawn = None if empty else _drawn_by_us(out)
        if not empty and drawn is None:
            raise TinyVAEError(f"--out {out} is a non-empty directory that 'tinyvae figures' did not write (it has "
                               "no README.md starting '# Figures / Drawn by `tinyvae figures`'); give a new or "
                               "empty directory, so that no file of yours is overwritten")
        if quick and drawn == "full":
            raise TinyVAEError(f"--out {out} holds full-size figures, which --quick would replace with small "
                               f"versions; draw the quick ones into another folder (without --out they go to "
                               f"{QUICK_OUT}), or drop --quick to redraw them at full size")
        if not quick and only and drawn == "quick":
            raise TinyVAEError(f"--out {out} holds quick figures, and --only would put full-size ones among them; "
                               "drop --only to redraw them all at full size, or choose another folder")
        return out
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TinyVAEError(f"--out {out}: {parent} is a file, not a directory; choose another location")
    return out


def write_readme(out, quick=False):
    """Write ``out/README.md``: the header, then each registered figure whose PNG is in ``out``
    with its caption. Draws nothing (after editing a caption, this alone updates the README)."""
    out = Path(out)
    lines = [README_HEADER[0], "", README_HEADER[1] + (" --quick" if quick else "") + "`; never edited by hand.", ""]
    for name, caption, _ in FIGURES:
        if (out / f"{name}.png").exists():
            lines.append(f"- `{name}.png`: {caption}")
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")   # LF on Windows too: it is committed
    return path


def make_figures(out, quick=False, only=None, seed=0, log=print):
    """Draw every registered figure (or those named in ``only``, with or without ``.png``) into
    ``out`` as PNG files and write ``out/README.md`` with the captions. Returns the list of
    paths written.

    ``out`` must be a new or empty directory, or one this function wrote before (see
    :func:`check_out_dir`); every argument is checked before anything is created."""
    seed = check_seed(seed)
    names = [n for n, _, _ in FIGURES]
    if only is not None:
        if isinstance(only, str):
            only = [only]
        only = [str(n).strip() for n in only]
        only = [n for n in (n[:-len(".png")] if n.lower().endswith(".png") else n for n in only) if n]
        if not only:
            raise TinyVAEError(f"--only names no figure; give one or more of: {', '.join(names)}")
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise TinyVAEError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(names)}")
    out = check_out_dir(out, quick=quick, only=only)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinyVAEError(f"cannot create --out {out}: {e.strerror or e}; choose another directory") from None
    ctx = Context(quick=quick, seed=seed)
    written = []
    for name, caption, fn in FIGURES:
        if only and name not in only:
            continue
        start = time.perf_counter()
        fig = fn(ctx)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
        log(f"{path}  ({time.perf_counter() - start:.1f} s)")
    write_readme(out, quick=quick)
    return written


def _cmd_figures(args):
    from .commands import nonneg_int
    seed = nonneg_int("--seed", args.seed)
    only = None if args.only is None else args.only.split(",")     # '' or ',' name no figure: an error
    out = args.out if args.out is not None else (QUICK_OUT if args.quick else "figures")
    make_figures(out, quick=args.quick, only=only, seed=seed)
    return 0


def register(sub):
    p = sub.add_parser(
        "figures", help="redraw the chapter's figures (PNG) into a folder",
        description="Draw the figures of the lessons as PNG files, with a README.md listing their captions. "
                    "--out must be a new or empty directory, or one 'tinyvae figures' wrote before; nothing "
                    "else is overwritten. The full set takes a few minutes; --quick draws a small version in "
                    f"about half a minute, into {QUICK_OUT}/ unless --out says otherwise, and never into a "
                    "folder of full-size figures such as figures/. The full set's VAE pictures use "
                    "Fashion-MNIST, which is downloaded (about 30 MB, checksummed) if this machine does not "
                    "have it yet; where that fails, the 8x8 digits stand in and the titles say so. --quick "
                    "stays offline.")
    p.add_argument("--quick", action="store_true",
                   help=f"small data and few epochs (about half a minute, not minutes); default --out {QUICK_OUT}")
    p.add_argument("--out", default=None, help="the folder to write: new, empty, or written by 'tinyvae figures' "
                                               f"before (default: figures, or {QUICK_OUT} with --quick)")
    p.add_argument("--only", default=None, help="comma-separated figure names to draw, with or without .png "
                                                "(default: all); an unknown name lists the known ones")
    p.add_argument("--seed", default="0", help="seed of every random stream (default 0)")
    p.set_defaults(func=_cmd_figures)
