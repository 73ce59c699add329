"""``tinyvae train``, ``tinyvae eval`` and ``tinyvae sample``.

``tinyvae train`` with no options is the main job: a VAE with a 2-D latent space on the 8x8
digits, trained in a few seconds, written to a fresh run directory:

    model.npz            the checkpoint: model, optimizer, random streams, position, history
    history.csv          per-epoch training and validation (test-set) losses, terms apart
    reconstructions.png  test inputs above their reconstructions
    samples.png          decoded draws from the prior z ~ N(0, I)        (VAE)
    latent_space.png     posterior means of the test set, coloured by label
    latent_manifold.png  decoded means on a grid of z                   (2-D latent VAE)
    loss_curves.png      the loss, the reconstruction term and the KL, train and validation

Ctrl-C saves the exact state (between two minibatches) and exits with status 130 (SIGTERM and
SIGHUP do the same with 143 and 129); ``tinyvae train --resume DIR`` finishes the run with the
same bits as an uninterrupted one. While it trains, the run directory is locked against a second
``tinyvae train``.
"""
import contextlib
import csv
import io
import math
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from pathlib import PurePath

import numpy as np

from . import checkpoint
from .errors import TinyVAEError

# The main job's recipe. A 2-D latent space gives the scatter plot and the manifold figure.
DEFAULTS = dict(model="vae", data="digits", epochs=300, batch_size=128, lr=1e-3, hidden="256",
                latent=2, likelihood="bernoulli", activation="relu", beta=1.0, sigma2=1.0, seed=0,
                optimizer="adam", binarize="none", checkpoint_every=25, threads=1)
MODEL_OPTIONS = ("model", "data", "batch_size", "lr", "hidden", "latent", "likelihood", "activation",
                 "beta", "sigma2", "seed", "optimizer", "binarize", "threads", "out")
FIGURES = ("reconstructions.png", "samples.png", "latent_space.png", "latent_manifold.png", "loss_curves.png")
IMAGE_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
MAX_SAMPLES = 400          # sample: a 20 x 20 grid; more images are too small to see


# --------------------------------------------------------------------------------------------
# option values: parsed here so every mistake becomes one clear line

def positive_int(option, text):
    try:
        value = int(str(text).strip())
    except ValueError:
        raise TinyVAEError(f"{option} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise TinyVAEError(f"{option} must be a positive integer, got {text!r}")
    return value


def nonneg_int(option, text):
    try:
        value = int(str(text).strip())
    except ValueError:
        raise TinyVAEError(f"{option} must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise TinyVAEError(f"{option} must be a non-negative integer, got {text!r}")
    return value


def usable_cores():
    """The cores this process may run on (a taskset or a container's cpuset counts), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):              # not on Linux
        return os.cpu_count() or 1


def thread_count(option, text):
    """A --threads value: a positive integer no larger than the machine's core count (more BLAS
    threads than cores spin against each other: training runs tens of times slower)."""
    value = positive_int(option, text)
    cores = usable_cores()
    if value > cores:
        raise TinyVAEError(f"{option} {value} is more than this machine's {cores} core{'' if cores == 1 else 's'}; "
                           f"give at most {option} {cores} (more threads than cores only slow it down)")
    return value


def positive_float(option, text, allow_zero=False):
    try:
        value = float(str(text).strip())
    except ValueError:
        raise TinyVAEError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        raise TinyVAEError(f"{option} must be a finite, {what} number, got {text!r}")
    return value


def hidden_widths(text):
    """'400,200' -> (400, 200); '' or 'none' -> () (linear encoder and decoder)."""
    text = str(text).strip()
    if text.lower() in ("", "none", "linear"):
        return ()
    widths = []
    for part in text.split(","):
        try:
            w = int(part.strip())
        except ValueError:
            w = 0
        if w < 1:
            raise TinyVAEError(f"--hidden must be comma-separated positive layer widths such as 400 or 400,200 "
                               f"(or '' for a linear model), got {text!r}")
        widths.append(w)
    return tuple(widths)


def choice(option, text, choices):
    if text not in choices:
        raise TinyVAEError(f"{option} must be one of {', '.join(choices)}, got {text!r}")
    return text


# --------------------------------------------------------------------------------------------
# the parsers

def register(subparsers):
    """Add ``train``, ``eval`` and ``sample`` to the ``tinyvae`` command line."""
    d = DEFAULTS
    t = subparsers.add_parser(
        "train", help="train a VAE or an autoencoder; writes a run directory",
        description="Train a model and write a run directory (checkpoint, history.csv, figures). "
                    "With no options: a VAE with a 2-D latent space on the 8x8 digits. Ctrl-C saves "
                    "the exact state; --resume DIR finishes the run bit for bit.")
    t.add_argument("--model", help=f"vae | ae (default {d['model']})")
    t.add_argument("--data", help="digits | mnist | fashion-mnist | a directory of IDX files | a .npy/.npz "
                                  f"image array (default {d['data']})")
    t.add_argument("--epochs", help=f"epochs to train (default {d['epochs']})")
    t.add_argument("--batch-size", help=f"minibatch size (default {d['batch_size']})")
    t.add_argument("--lr", help=f"learning rate (default {d['lr']:g})")
    t.add_argument("--hidden", help=f"hidden layer widths, comma-separated; '' for none (default {d['hidden']}; "
                                    "an autoencoder without them is linear only with --activation identity)")
    t.add_argument("--latent", help=f"latent (VAE) or code (ae) dimension (default {d['latent']})")
    t.add_argument("--likelihood", help=f"bernoulli | gaussian; for --model ae: bce | mse loss "
                                        f"(default {d['likelihood']})")
    t.add_argument("--activation", help=f"relu | leaky_relu | tanh | sigmoid | softplus | identity "
                                        f"(default {d['activation']}; tanh for --model ae, whose code passes "
                                        "through it and whose ReLU code units often die)")
    t.add_argument("--beta", help=f"weight of the KL term (VAE; default {d['beta']:g})")
    t.add_argument("--sigma2", help=f"variance of the Gaussian decoder, with --likelihood gaussian "
                                    f"(default {d['sigma2']:g})")
    t.add_argument("--optimizer", help=f"adam | sgd (momentum 0.9) (default {d['optimizer']})")
    t.add_argument("--binarize", help=f"none | static | dynamic: train on Bernoulli draws of the gray "
                                      f"values (default {d['binarize']})")
    t.add_argument("--seed", help=f"seed of every random stream (default {d['seed']})")
    t.add_argument("--threads", help=f"BLAS threads, at most the core count (default {d['threads']}: fastest "
                                     "for small models, and bits independent of the core count)")
    t.add_argument("--checkpoint-every", help=f"save the checkpoint every N epochs (default {d['checkpoint_every']}; "
                                              "also at the end and on Ctrl-C)")
    t.add_argument("--out", help="the run directory to create (default: runs/<model>-<data>, numbered if taken)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR where it stopped")
    t.add_argument("--no-progress", action="store_true", help="no progress bar; print a line every few epochs")
    t.add_argument("--no-figures", action="store_true", help="skip the figures (a resumed run keeps the setting "
                                                             "it was started with; --no-figures turns them off)")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser(
        "eval", help="test-set negative ELBO and importance-weighted log-likelihood of a run",
        description="Evaluate a trained model on its test set, in nats per image: the negative ELBO (one "
                    "sample per image) on the whole test set; then, on the same first N images and the same k "
                    "draws of z per image, the negative ELBO (the mean of the k log-weights) beside the "
                    "importance-weighted bound on -log p(x) (the log of their mean; Burda et al. 2015), "
                    "which is never larger. An autoencoder's run gets its reconstruction loss and its total loss "
                    "(with its penalty) on the clean test images, and takes none of --k, --n and --seed.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a model .npz)")
    e.add_argument("--k", help="importance samples per image (default 5000: about a minute or two for 1000 "
                               "Fashion-MNIST images on two cores; a progress bar on a terminal)")
    e.add_argument("--n", help="compare the two bounds on the first N test images "
                               "(default: all, at most 1000)")
    e.add_argument("--data", help="the dataset to evaluate on, a name or a path (default: the one the run "
                                   "was trained on)")
    e.add_argument("--seed", help="seed of the evaluation noise (default: the one-sample ELBO uses the "
                                   "draws of z that train used for its last test -ELBO, so it repeats that "
                                   "figure; the bounds use seed 0)")
    e.add_argument("--threads", default="1", help="BLAS threads, at most the core count (default 1)")
    e.set_defaults(func=cmd_eval)

    s = subparsers.add_parser("sample", help="an image grid of samples from a trained VAE's prior",
                              description="Decode z ~ N(0, I) and write the images as a grid.")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a model .npz)")
    s.add_argument("--n", default="64", help=f"number of samples, at most {MAX_SAMPLES} (default 64)")
    s.add_argument("--seed", default="0", help="seed of z (default 0)")
    s.add_argument("--out", help="the image file (default RUN_DIR/sample-seed<SEED>.png, numbered if taken)")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    s.set_defaults(func=cmd_sample)


# --------------------------------------------------------------------------------------------
# helpers

@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS to ``n`` threads within the block (threadpoolctl, a declared dependency)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:              # pragma: no cover - a declared dependency
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def arithmetic():
    """What decides a run's bits besides its options: the kernel backend and the BLAS library
    with the kernel it picked for this CPU (OpenBLAS has one per processor family, and each sums
    a matrix product in its own order). A run resumed where these differ goes on with other
    last bits than an uninterrupted run would have."""
    from .kernels import get_backend
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info
        # NumPy's own BLAS, inside its package (numpy.libs beside it in a wheel): SciPy, once
        # loaded, brings another OpenBLAS that may be listed first
        package = PurePath(np.__file__).parent
        homes = (package, package.parent / "numpy.libs")
        found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        numpys = [i for i in found if any(home in PurePath(str(i.get("filepath", ""))).parents for home in homes)]
        info = numpys[0] if len(numpys) == 1 else None          # else: a system BLAS, not told apart
        if info is not None:
            blas = " ".join(str(info.get(k)) for k in ("internal_api", "version", "architecture") if info.get(k))
    except Exception:                 # pragma: no cover - threadpoolctl is a declared dependency
        pass
    return {"backend": get_backend(), "blas": blas}


def shell_quote(path, windows=None):
    """``path`` as one argument in a command line to copy: POSIX shell quoting ('my run'), or on
    Windows cmd.exe's double quotes ("runs\\my run"), since cmd.exe keeps single quotes as text."""
    windows = os.name == "nt" if windows is None else windows
    return subprocess.list2cmdline([str(path)]) if windows else shlex.quote(str(path))


def _slug(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.") or "data"


def _check_out_dir(out):
    """Refuse an --out that is empty, a file or a non-empty directory (nothing is written)."""
    if str(out).strip() == "":
        raise TinyVAEError("--out is empty; give the name of a new (or empty) directory for the run, "
                           "or leave --out out for runs/<model>-<data>")
    if os.path.isfile(out) or (os.path.exists(out) and not os.path.isdir(out)):
        raise TinyVAEError(f"--out {out} is an existing file; give the name of a new (or empty) directory")
    if os.path.islink(out) and not os.path.exists(out):
        raise TinyVAEError(f"--out {out} is a broken symbolic link (to {os.readlink(out)}); remove it or "
                           "choose another directory")
    if os.path.isdir(out) and _contents(out):
        run = os.path.isfile(os.path.join(out, checkpoint.FILENAME))
        raise TinyVAEError(f"--out {out} exists and is not empty; choose a new directory"
                           + (f", or continue the run in it with 'tinyvae train --resume {shell_quote(out)}'"
                              if run else ""))
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise TinyVAEError(f"--out {out}: {parent} is a file, not a directory; choose another location")
    return out


LOCK = ".tinyvae-train.lock"      # held by the one 'tinyvae train' that writes into a run directory


def _contents(out):
    """What a run directory holds, less the lock file and the temporary files of a killed write."""
    return [n for n in os.listdir(out) if n != LOCK and not _our_temporary(n)]


def _fresh_run_dir(model_kind, data_name):
    """Create runs/<model>-<data>, or -2, -3, ...: the first name no one has taken, taken
    atomically, so two runs started at once never share a directory."""
    base = os.path.join("runs", f"{model_kind}-{_slug(data_name)}")
    out, i = base, 1
    while True:
        try:
            os.makedirs(out)
            return out
        except FileExistsError:
            i += 1
            out = f"{base}-{i}"
        except OSError as e:
            raise TinyVAEError(f"cannot create the run directory {out}: {e.strerror or e}; "
                               "choose a writable place with --out") from None


def _make_dir(out):
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise TinyVAEError(f"cannot create the run directory {out}: {e.strerror or e}; choose another --out") from None


@contextlib.contextmanager
def run_lock(out, fresh):
    """Hold an exclusive lock on the run directory ``out`` while training writes into it: a
    second 'tinyvae train' on the same directory (two runs given one --out, a --resume of a
    run that is still training) is refused instead of overwriting the first one's files. A
    ``fresh`` run's directory must still be empty once the lock is held. Temporary files that
    a killed write of ours left behind are removed, and so is the lock file at the end. Where
    there are no POSIX locks (Windows) or the file system refuses them (some network mounts),
    training goes on unlocked."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not on Linux or macOS
        yield
        return
    path = os.path.join(out, LOCK)
    unlocked = False
    for attempt in range(5):
        try:
            # never through a symbolic link: a run directory from elsewhere (a tar, say) could hold
            # one at this name, and the pid written below would overwrite the file it points to
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            if os.path.islink(path):
                raise TinyVAEError(f"{path} is a symbolic link, not tinyvae's lock file; remove it "
                                   "(rm the link, not what it points to) and try again") from None
            raise TinyVAEError(f"cannot write in the run directory {out}: {e.strerror or e}; "
                               + ("choose another --out" if fresh else "make it writable, or copy it elsewhere "
                                  "and resume the copy")) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise TinyVAEError(f"{path} is not a regular file, so not tinyvae's lock file; remove it and try again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:                          # held: another tinyvae train is writing here
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise TinyVAEError(f"{out} is in use by another 'tinyvae train' (pid {pid}); wait for it to "
                               "finish, or give this run another --out") from None
        except OSError:                                  # no locks on this file system: go on without
            os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(path)
            unlocked = True
            break
        if os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path)):
            break
        os.close(fd)                  # the lock file was removed by its last holder meanwhile: again
    else:
        raise TinyVAEError(f"cannot lock the run directory {out}: its lock file keeps changing; try again")
    if unlocked:
        yield
        return
    try:
        if fresh and _contents(out):
            raise TinyVAEError(f"--out {out} was filled by another run while this one started; give this "
                               "run another --out")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for name in os.listdir(out):
            if _our_temporary(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(out, name))
        yield
    finally:
        with contextlib.suppress(OSError):              # removed while still held, then released
            os.remove(path)
        os.close(fd)


def _our_temporary(name):
    """A temporary file of a write of the run's own files (model.npz, history.csv, a figure)."""
    return checkpoint.is_temporary(name) and any(
        name.startswith(f".{own}.") for own in (checkpoint.FILENAME, "history.csv", *FIGURES))


def write_history_csv(history, path):
    """The history as CSV, one row per epoch, written atomically (temporary file, rename)."""
    keys = list(history)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for i in range(len(history.get("epoch", []))):
        w.writerow([repr(history[k][i]) if isinstance(history[k][i], float) else history[k][i] for k in keys])
    checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def read_history_csv(path):
    """history.csv back into a dict of lists (epoch as int, the rest as float)."""
    with open(path) as f:
        rows = list(csv.reader(f))
    keys, body = rows[0], rows[1:]
    return {k: [int(r[j]) if k == "epoch" else float(r[j]) for r in body] for j, k in enumerate(keys)}


def _test_data(ds, binarize, seed):
    """The test images the run is measured on: binary draws (fixed seed) for dynamic binarization."""
    if binarize == "dynamic":
        from .data import binarize_batch
        return binarize_batch(ds.x_test, np.random.default_rng([seed, 5]))
    return ds.x_test


def _check_features(model, x, what, advice):
    """An error naming the real fix when the data's width is not the model's input_dim (for a
    saved model the fix is other data, not another model)."""
    if np.ndim(x) == 2 and x.shape[1] != model.input_dim:
        raise TinyVAEError(f"{what} have {x.shape[1]} values per image but the model expects "
                           f"{model.input_dim}; {advice}")


def _article(word):
    return "an" if str(word)[:1].lower() in "aeiou" else "a"


def _image_shape(run, model):
    if run and run.get("image_shape"):
        return tuple(run["image_shape"])
    side = math.isqrt(model.input_dim)
    return (side, side) if side * side == model.input_dim else (1, model.input_dim)


def _describe(row):
    """One epoch's line: the loss, the validation loss and the terms; NaN (a term this epoch
    lacks, e.g. no validation set) is left out."""
    row = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
    parts = [f"loss {row['loss']:.3f}"]
    if "val_loss" in row:
        parts.append(f"val {row['val_loss']:.3f}")
    terms = [f"{k} {v:.3f}" for k, v in row.items() if k not in ("epoch", "loss") and not k.startswith("val_")]
    return "  ".join(parts) + (f"  ({', '.join(terms)})" if terms else "")


# --------------------------------------------------------------------------------------------
# tinyvae train

def _train_options(args):
    """The run's options from the command line, every value checked, nothing touched on disk."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    o = dict(DEFAULTS, **given)
    opts = dict(model=choice("--model", o["model"], ("vae", "ae")), data=str(o["data"]),
                epochs=positive_int("--epochs", o["epochs"]), batch_size=positive_int("--batch-size", o["batch_size"]),
                lr=positive_float("--lr", o["lr"]), hidden=list(hidden_widths(o["hidden"])),
                latent=positive_int("--latent", o["latent"]),
                # an autoencoder's code passes through the activation: 2 ReLU code units often die
                activation=o["activation"] if "activation" in given or o["model"] != "ae" else "tanh",
                beta=positive_float("--beta", o["beta"], allow_zero=True), sigma2=positive_float("--sigma2", o["sigma2"]),
                seed=nonneg_int("--seed", o["seed"]), optimizer=choice("--optimizer", o["optimizer"], ("adam", "sgd")),
                binarize=choice("--binarize", o["binarize"], ("none", "static", "dynamic")),
                threads=thread_count("--threads", o["threads"]),
                checkpoint_every=positive_int("--checkpoint-every", o["checkpoint_every"]))
    from .kernels import ACTIVATIONS
    choice("--activation", opts["activation"], ACTIVATIONS)
    if opts["model"] == "vae" and o["likelihood"] in ("bce", "mse"):
        raise TinyVAEError(f"--likelihood {o['likelihood']} names an autoencoder loss (--model ae); the VAE's "
                           "likelihoods are bernoulli (its bce) and gaussian (its mse): use --likelihood "
                           f"{'bernoulli' if o['likelihood'] == 'bce' else 'gaussian'}, or add --model ae")
    from .autoencoder import LOSSES
    from .vae import LIKELIHOODS
    if opts["model"] == "vae" and o["likelihood"] not in LIKELIHOODS:
        raise TinyVAEError(f"--likelihood must be one of {', '.join(LIKELIHOODS)} for the VAE (the autoencoder, "
                           f"--model ae, also takes {', '.join(LOSSES)}), got {o['likelihood']!r}")
    opts["likelihood"] = choice("--likelihood", o["likelihood"], LIKELIHOODS + LOSSES)
    if opts["model"] == "ae":
        for name in ("beta", "sigma2"):
            if name in given:
                raise TinyVAEError(f"--{name} applies to the VAE only; drop it or use --model vae")
    if opts["model"] == "vae" and "sigma2" in given and opts["likelihood"] != "gaussian":
        raise TinyVAEError("--sigma2 is the variance of a Gaussian decoder; add --likelihood gaussian or drop it")
    return opts


def _build_model(opts, input_dim):
    from .autoencoder import Autoencoder
    from .vae import VAE
    if opts["model"] == "vae":
        return VAE(input_dim=input_dim, hidden_dims=opts["hidden"], latent_dim=opts["latent"],
                   likelihood=opts["likelihood"], activation=opts["activation"], beta=opts["beta"],
                   sigma2=opts["sigma2"], seed=opts["seed"])
    # the VAE's likelihood names for the autoencoder's losses; any other name reaches its own check
    loss = {"bernoulli": "bce", "gaussian": "mse"}.get(opts["likelihood"], opts["likelihood"])
    return Autoencoder(input_dim=input_dim, hidden_dims=opts["hidden"], code_dim=opts["latent"],
                       activation=opts["activation"], loss=loss, seed=opts["seed"])


def _load_data(opts):
    from .data import load_dataset
    binarize = None if opts["binarize"] == "none" else opts["binarize"]
    return load_dataset(opts["data"], binarize=binarize, seed=opts["seed"], progress=sys.stderr.isatty())


def cmd_train(args):
    t0 = time.perf_counter()
    from .train import Trainer

    if args.resume is not None:
        _check_run_dir(args)
        # locked before the checkpoint is read: a run that another 'tinyvae train --resume' is
        # finishing meanwhile must not be overwritten from its older state
        with run_lock(args.resume, fresh=False):
            model, trainer, opts, ds, out = _resume(args)
            x_train, x_test = _run_data(model, trainer, opts, ds, out)
            return _train_in(args, out, model, trainer, opts, ds, x_train, x_test, t0)
    opts = _train_options(args)
    if args.out is not None:
        _check_out_dir(args.out)
    ds = _load_data(opts)
    model = _build_model(opts, ds.x_train.shape[1])
    key = opts["data"].strip().lower()
    from .data import ALIASES
    if key not in ALIASES and os.path.exists(opts["data"]):
        opts["data"] = os.path.abspath(opts["data"])          # resumable from anywhere
    trainer = Trainer(model, opts["batch_size"], opts["lr"], opts["optimizer"], opts["seed"],
                      "dynamic" if opts["binarize"] == "dynamic" else None)
    x_train, x_test = _run_data(model, trainer, opts, ds, None)
    if args.out is not None:                  # everything checked: now the run directory
        out = args.out
        _make_dir(out)
    else:
        out = _fresh_run_dir(opts["model"], ds.name)
    opts.update(data_name=ds.name, image_shape=list(ds.image_shape), out=os.path.abspath(out),
                figures=not args.no_figures, **arithmetic())
    with run_lock(out, fresh=True):
        return _train_in(args, out, model, trainer, opts, ds, x_train, x_test, t0)


def _run_data(model, trainer, opts, ds, resumed_from):
    """The checked (x_train, x_test) of a run; for a resumed run (``resumed_from``, its
    directory) also the same data the run was trained on."""
    from .train import check_data, data_fingerprint
    if resumed_from is not None:
        restore = (f"restore the data the run in {resumed_from} was trained on ({opts['data']}), or start a "
                   "new run")
        _check_features(model, ds.x_train, f"the training images of {ds.name}", restore)
        _check_features(model, ds.x_test, f"the test images of {ds.name}", restore)
    x_train = check_data(model, ds.x_train, f"the training images of {ds.name}")
    x_test = check_data(model, _test_data(ds, opts["binarize"], opts["seed"]), f"the test images of {ds.name}")
    if resumed_from is not None and trainer.data_id is not None and data_fingerprint(x_train) != trainer.data_id:
        raise TinyVAEError(f"the training data of {opts['data']} differ from those the run in {resumed_from} was "
                           "trained on; restore them, or start a new run")
    return x_train, x_test


def _train_in(args, out, model, trainer, opts, ds, x_train, x_test, t0):
    """The training of ``cmd_train`` in the run directory ``out``, which it holds locked."""
    from .interrupts import defer_sigint, interruption, report
    from .train import DivergedError
    ckpt_path = os.path.join(out, checkpoint.FILENAME)
    hist_path = os.path.join(out, "history.csv")

    def say(text):                         # stdout; a terminal closed mid-run (SIGHUP) is no crash
        report(text, file=sys.stdout)
    show_bar = not args.no_progress and sys.stderr.isatty()
    print_every = max(1, opts["epochs"] // 10)

    def save_state():
        checkpoint.save(model, ckpt_path, trainer, run=opts)
        write_history_csv(trainer.history, hist_path)

    def on_epoch(t):
        if t.epoch % opts["checkpoint_every"] == 0:
            save_state()
        if not show_bar and (t.epoch % print_every == 0 or t.epoch == 1 or t.epoch == opts["epochs"]):
            row = {k: v[-1] for k, v in t.history.items()}
            say(f"epoch {t.epoch:>4}/{opts['epochs']}  {_describe(row)}")

    action = "resuming" if args.resume is not None else "training"
    where = f" from epoch {trainer.epoch + 1}" + (f", minibatch {trainer.step + 1}" if trainer.step else "")
    if trainer.epoch >= opts["epochs"]:        # --resume of a finished run whose figures are missing
        say(f"the run in {out} has finished its {trainer.epoch} epochs; writing its history and figures")
    else:
        say(f"{action} {_article(repr(model))} {model!r} on {ds.name} "
            f"({x_train.shape[0]} train / {x_test.shape[0]} test images)"
            f"{where if args.resume is not None else ''} -> {out}")
    resume = f"tinyvae train --resume {shell_quote(out)}"
    with blas_threads(min(opts["threads"], usable_cores())):
        if args.resume is None:
            save_state()                       # epoch 0: a good checkpoint exists from the start
        try:
            trainer.run(x_train, opts["epochs"], x_val=x_test, progress=show_bar, epoch_callback=on_epoch,
                        checked=True)
        except KeyboardInterrupt as e:
            with defer_sigint():               # a second Ctrl-C does not cut the save short
                save_state()
            where = (f"after minibatch {trainer.step} of epoch {trainer.epoch + 1}" if trainer.step
                     else f"after epoch {trainer.epoch}")
            status, what = interruption(e)
            report(f"{what} {where}: the exact state is saved in {ckpt_path}; continue with: {resume}", stop=True)
            return status
        except TinyVAEError as e:
            advice = (". --resume keeps the run's learning rate, so start a new run with a lower --lr and "
                      "another --out") if isinstance(e, DivergedError) else ""
            raise TinyVAEError(f"{e}; the last good checkpoint (epoch {_saved_epoch(ckpt_path)}) is kept "
                               f"in {ckpt_path}{advice}") from None
        with defer_sigint() as stop:
            save_state()
        figures = []
        wanted = not args.no_figures and opts.get("figures", True)
        try:
            if stop.requested:                 # a Ctrl-C during the last save: no figures now
                raise stop.interrupt()
            if wanted:
                figures = write_figures(model, ds, x_test, trainer.history, out)
        except KeyboardInterrupt as e:
            status, what = interruption(e)
            if wanted:
                report(f"{what} while drawing the figures: the trained model is saved in {ckpt_path}; "
                       f"draw them with: {resume}", stop=True)
            else:
                report(f"{what} after the last epoch: the trained model is saved in {ckpt_path}", stop=True)
            return status
        except TinyVAEError as e:
            raise TinyVAEError(f"{e}; the trained model is saved in {ckpt_path}: once the figures can be "
                               f"written, draw them with: {resume}") from None
    elapsed = time.perf_counter() - t0
    last = {k: v[-1] for k, v in trainer.history.items()}
    say(f"done in {elapsed:.1f} s: {_summary(model, last)}")
    say(f"results in {os.path.join(out, '')}: {', '.join([checkpoint.FILENAME, 'history.csv'] + figures)}")
    quoted = shell_quote(out)
    if model.kind == "vae":
        say(f"next: tinyvae eval {quoted}   |   tinyvae sample {quoted}")
    else:                                  # an autoencoder has no prior to sample from
        say(f"next: tinyvae eval {quoted}")
    return 0


def _saved_epoch(path):
    try:
        return checkpoint.read(path).trainer.epoch
    except (TinyVAEError, AttributeError):
        return "unknown"


def _summary(model, last):
    if model.kind == "vae":
        s = f"train -ELBO {last['rec'] + last['kl']:.2f} nats" if model.beta != 1 else f"train loss (-ELBO) {last['loss']:.2f} nats"
        if "val_loss" in last:
            s += f", test -ELBO {last['val_rec'] + last['val_kl']:.2f} nats (rec {last['val_rec']:.2f} + KL {last['val_kl']:.2f})"
        return s
    unit = "nats" if model.loss == "bce" else "(1/2 squared error)"          # per image, as eval says
    s = f"train loss {last['loss']:.2f} {unit}"
    if "val_loss" in last:
        s += f", test loss {last['val_loss']:.2f} {unit}"
    return s


def _check_run_dir(args):
    """The checks of --resume that need no checkpoint read: its options, and a run directory."""
    explicit = [k for k in MODEL_OPTIONS if getattr(args, k, None) is not None]
    if explicit:
        names = ", ".join("--" + k.replace("_", "-") for k in explicit)
        raise TinyVAEError(f"--resume continues a run with its saved options; drop {names} "
                           "(only --epochs, --checkpoint-every, --no-progress and --no-figures may change; "
                           "the run keeps its saved figures setting)")
    if os.path.isfile(args.resume):
        inside = os.path.basename(args.resume) == checkpoint.FILENAME
        raise TinyVAEError(f"--resume takes a run directory written by 'tinyvae train', got the file "
                           f"{args.resume}; " + (f"give its directory, {os.path.dirname(args.resume) or '.'}"
                                                 if inside else "give the directory that 'tinyvae train' wrote"))
    if not os.path.isdir(args.resume):
        raise TinyVAEError(f"--resume {args.resume}: no such directory; give the run directory written by "
                           "'tinyvae train' (it printed 'results in DIR/')")
    if not os.path.isfile(os.path.join(args.resume, checkpoint.FILENAME)):
        raise TinyVAEError(f"--resume {args.resume} holds no {checkpoint.FILENAME}: not a run directory; give "
                           "the directory written by 'tinyvae train' (it printed 'results in DIR/')")


def _resume(args):
    """The saved run in ``args.resume`` (checked by :func:`_check_run_dir`, and locked)."""
    ck = checkpoint.read(args.resume)
    out = args.resume
    if ck.trainer is None or ck.run is None or ck.run.get("data") is None:
        raise TinyVAEError(f"{ck.path} holds no training run (it was written by model.save, not "
                           "'tinyvae train'); start a new run with tinyvae train")
    opts = dict(ck.run)
    if args.epochs is not None:
        opts["epochs"] = positive_int("--epochs", args.epochs)
    if args.checkpoint_every is not None:
        opts["checkpoint_every"] = positive_int("--checkpoint-every", args.checkpoint_every)
    cores = usable_cores()
    differ = ("; from here on its results differ from an uninterrupted run's, in the last bits at first "
              "and by more over many epochs")
    if opts.get("threads", 1) > cores:           # saved on a bigger machine: more would only slow it
        print(f"note: the run was started with --threads {opts['threads']}; this machine has {cores} "
              f"core{'' if cores == 1 else 's'}, so this session uses --threads {cores} (the run keeps "
              f"{opts['threads']} for later){differ}", file=sys.stderr)
    now = arithmetic()
    changed = [f"{key} {opts[key]!r}, this session {now[key]!r}" for key in ("backend", "blas")
               if opts.get(key) is not None and opts[key] != now[key]]
    if changed:                                  # another machine, or TINYVAE_BACKEND (the run keeps its own)
        print(f"note: the run was started with {' and '.join(changed)}{differ}", file=sys.stderr)
    trainer = ck.trainer
    # a run that finished its epochs only continues to draw figures that a Ctrl-C left undrawn
    finished = trainer.step == 0 and trainer.epoch >= ck.run.get("epochs", 0) == opts["epochs"]
    wants_figures = not args.no_figures and opts.get("figures", True)
    missing = [name for name in figure_names(ck.model) if not os.path.exists(os.path.join(out, name))]
    stale = _history_rows(os.path.join(out, "history.csv")) != trainer.epoch     # its write had failed
    if trainer.epoch >= opts["epochs"] and not (finished and ((wants_figures and missing) or stale)):
        raise TinyVAEError(f"the run in {out} has finished its {trainer.epoch} epochs; to train further pass "
                           f"--epochs N with N > {trainer.epoch}")
    if not _dataset_exists(opts["data"]):
        raise TinyVAEError(f"the run's training data, {opts['data']}, is no longer there; put it back "
                           "to continue the run (--resume keeps the data it started with)")
    ds = _load_data(opts)
    return ck.model, trainer, opts, ds, out


def _history_rows(path):
    """The number of epochs in a history.csv, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except (OSError, UnicodeDecodeError):
        return None


def figure_names(model):
    """The PNGs that training writes into a run directory for ``model``, in drawing order."""
    vae = model.kind == "vae"
    return (["reconstructions.png"] + (["samples.png"] if vae else []) + ["latent_space.png"]
            + (["latent_manifold.png"] if vae and model.latent_dim == 2 else []) + ["loss_curves.png"])


def _history_unit(model):
    """The y axis of the loss curves: nats (a VAE, either likelihood, or a BCE autoencoder), or
    half squared errors (an MSE autoencoder), as the summary line says."""
    if model.kind == "vae" or model.loss == "bce":
        return "nats per example"
    return "1/2 squared error per example"


def write_figures(model, ds, x_test, history, out):
    """The run's figures, as PNGs in ``out``; returns their file names."""
    from . import plots
    shape = tuple(ds.image_shape)
    figs = {"reconstructions.png": lambda: plots.plot_reconstructions(model, x_test, shape),
            "samples.png": lambda: plots.plot_samples(model, shape, n=64, seed=0),
            "latent_space.png": lambda: plots.plot_latent_space(model, x_test, ds.y_test),
            "latent_manifold.png": lambda: plots.plot_latent_manifold(model, shape, n=15 if shape[0] < 20 else 20),
            "loss_curves.png": lambda: plots.plot_history(history, title=f"{model.kind.upper()} on {ds.name}",
                                                          val_label="test", unit=_history_unit(model))}
    written = []
    for name in figure_names(model):
        fig = figs[name]()
        # "tight": a title wider than a grid of small or narrow images shows whole; atomic: a
        # Ctrl-C or a full disk never leaves half a PNG that would count as drawn
        checkpoint.atomic_write(os.path.join(out, name),
                                lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        written.append(name)
    return written


# --------------------------------------------------------------------------------------------
# tinyvae eval / sample

def _dataset_exists(data):
    """False only for a file or folder path that has gone (names such as digits always 'exist')."""
    from .data import ALIASES
    return str(data).strip().lower() in ALIASES or os.path.exists(data)


def _load_run(run_dir, data=None):
    ck = checkpoint.read(run_dir)
    run = ck.run or {}
    name = data if data is not None else run.get("data")
    return ck, run, name


def cmd_eval(args):
    k = positive_int("--k", "5000" if args.k is None else args.k)
    n_max = None if args.n is None else positive_int("--n", args.n)
    seed = None if args.seed is None else nonneg_int("--seed", args.seed)
    threads = thread_count("--threads", args.threads)
    ck, run, data = _load_run(args.run_dir, args.data)
    given = [o for o, v in (("--k", args.k), ("--n", args.n), ("--seed", args.seed)) if v is not None]
    if ck.model.kind != "vae" and given:
        raise TinyVAEError(f"{' and '.join(given)} apply to a VAE's bounds; the autoencoder in {ck.path} "
                           "is evaluated by its reconstruction loss alone: drop them")
    if data is None:
        raise TinyVAEError(f"{ck.path} does not name its dataset; pass --data NAME_OR_PATH")
    from .data import load_dataset
    from .train import check_data
    binarize = run.get("binarize", "none")
    if args.data is None and not _dataset_exists(data):
        raise TinyVAEError(f"the dataset {ck.path} was trained on, {data}, is no longer there; "
                           "pass --data NAME_OR_PATH to evaluate on other images of the same size")
    ds = load_dataset(data, binarize=None if binarize in ("none", "dynamic") else binarize,
                      seed=run.get("seed", 0), progress=sys.stderr.isatty())
    model = ck.model
    trained_on = f" ({run['data']})" if run.get("data") and run.get("data") != data else ""
    _check_features(model, ds.x_test, f"the test images of {ds.name}",
                    f"pass the --data the model in {ck.path} was trained on{trained_on}")
    x = check_data(model, _test_data(ds, binarize, run.get("seed", 0)), f"the test images of {ds.name}")
    t0 = time.perf_counter()
    print(f"{model!r}\ntest set: {ds.name}, {x.shape[0]} images")
    with blas_threads(threads):
        if model.kind != "vae":
            r = model.evaluate(x)
            unit = "nats" if model.loss == "bce" else "(1/2 squared error)"
            print(f"  reconstruction loss {r['rec']:.4f} {unit} per image; total loss {r['loss']:.4f}")
            return 0
        # one draw of z per image: by default the draws train used for the test -ELBO it printed
        # after its last epoch (on the same test images), so this line repeats that figure
        trainer = ck.trainer
        repeat = (seed is None and args.data is None and trainer is not None and trainer.epoch >= 1
                  and trainer.step == 0)                 # mid-epoch the model has moved on since
        noise = (lambda: trainer.validation_rng(trainer.epoch - 1)) if repeat else \
            (lambda: np.random.default_rng(0 if seed is None else seed))
        elbo_1 = model.elbo(x, rng=noise())                                  # (N,)
        r = model.evaluate(x, rng=noise())
        n = min(x.shape[0], n_max if n_max is not None else 1000)
        # the comparison is on the same n images and the same k draws of z per image: the ELBO
        # is the mean of the k log-weights, the bound the log of their mean (never smaller)
        if n * k * model.input_dim > SLOW_BOUND and not sys.stderr.isatty():   # minutes without a bar: say so
            print(f"computing the importance-weighted bound: {k} draws of z for each of {n} images ...",
                  file=sys.stderr, flush=True)
        iwae_k, elbo_k = model.log_likelihood(x[:n], k=k, seed=0 if seed is None else seed,
                                              return_elbo=True, progress=sys.stderr.isatty())   # (n,) each
    dt = time.perf_counter() - t0
    labels = ("negative ELBO, 1 sample per image",
              f"negative ELBO, mean of the k={k} log-weights",
              f"importance-weighted bound, k={k}")
    w = max(map(len, labels))
    print(f"  {labels[0]:<{w}} : {-elbo_1.mean():9.3f} nats per image "
          f"(reconstruction {r['rec']:.3f} + KL {r['kl']:.3f})")
    if repeat:
        print(f"  (the draws of z that train used for its test -ELBO after epoch {trainer.epoch}; "
              "--seed for others)")
    which = f"all {n} images" if n == x.shape[0] else f"the first {n} of the {x.shape[0]} images (--n to change)"
    print(f"both bounds on the same images, {which}:")
    print(f"  {labels[1]:<{w}} : {-elbo_k.mean():9.3f} nats per image")
    print(f"  {labels[2]:<{w}} : {-iwae_k.mean():9.3f} nats per image")
    print(f"  (-log p(x) <= the importance-weighted bound on average, and the bound tightens as k grows; "
          f"on the same draws it is never above the negative ELBO; {dt:.1f} s)")
    return 0


SLOW_BOUND = 1e9     # decoded values (images x k x pixels) beyond which eval's bound takes a minute or more


def _free_name(path):
    stem, ext = os.path.splitext(path)
    i = 1
    while os.path.exists(path):
        i += 1
        path = f"{stem}-{i}{ext}"
    return path


def cmd_sample(args):
    n = positive_int("--n", args.n)
    if n > MAX_SAMPLES:
        raise TinyVAEError(f"--n {n} is too many for one grid: at most {MAX_SAMPLES} (20 x 20 images; more "
                           "would be too small to see); for more samples run again with other --seed values")
    seed = nonneg_int("--seed", args.seed)
    if args.out is not None:
        if os.path.isdir(args.out):
            raise TinyVAEError(f"--out {args.out} is a directory; give an image file name such as samples.png")
        if not args.out.lower().endswith(IMAGE_EXTENSIONS):
            raise TinyVAEError(f"--out {args.out}: give an image file ending in {', '.join(IMAGE_EXTENSIONS)}")
        if os.path.exists(args.out) and not args.force:
            raise TinyVAEError(f"--out {args.out} exists; pass --force to overwrite it or choose another name")
    ck, run, _ = _load_run(args.run_dir)
    model = ck.model
    if model.kind != "vae":
        raise TinyVAEError(f"{ck.path} holds an autoencoder, which has no prior to sample from; "
                           "sample from a VAE run (tinyvae train --model vae)")
    out = args.out
    if out is None:
        out = _free_name(os.path.join(os.path.dirname(ck.path), f"sample-seed{seed}.png"))
    from . import plots
    fig = plots.plot_samples(model, _image_shape(run, model), n=n, seed=seed)
    try:
        fig.savefig(out, dpi=110, bbox_inches="tight")     # "tight": a long title on a small grid shows whole
    except OSError as e:
        raise TinyVAEError(f"cannot write {out}: {e.strerror or e}; choose another --out") from None
    print(f"{n} sample{'' if n == 1 else 's'} from the prior (seed {seed}) -> {out}")
    return 0
