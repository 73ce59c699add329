"""The training loop: shuffled minibatches, a hand-written optimizer, a history of losses.

Minibatch gradient descent (Goodfellow et al. sec. 8.1.3): each epoch visits the training set
in a fresh random order, B examples at a time, and after each minibatch the optimizer moves
the parameters against the gradient of that minibatch's mean loss.

Randomness is explicit: separate generators derived from ``seed``, no global seeding.

    data order      default_rng([seed, 1, epoch]).permutation(N)   a pure function of the epoch
    noise           default_rng([seed, 2])     the VAE's eps, the denoising corruption
    binarization    default_rng([seed, 3])     x ~ Bernoulli(gray values), binarize="dynamic"
    validation      default_rng([seed, 4, epoch])

The whole state of a run lives in a :class:`Trainer`: the optimizer (its moments), the noise
generators' states, how many epochs are done and how many minibatches of the current one,
the running sums of the current epoch and the history. Saving it (``tinyvae.checkpoint``)
between two minibatches and loading it again continues the run to the same bits as if it had
never stopped. Ctrl-C (SIGINT) during training is deferred to the end of the current
minibatch, so an interrupted trainer is always in such a consistent state; under the command
line, so are SIGTERM and SIGHUP (``kill``, a closed terminal), raised as
:class:`tinyvae.interrupts.Interrupted`, a KeyboardInterrupt.
"""
import contextlib
import hashlib
import math
import sys

import numpy as np

from .checkpoint import _is_int, _is_number
from .data import binarize_batch
from .errors import TinyVAEError, scale_advice
from .interrupts import defer_sigint
from .model import Model, as_array, check_nonneg_float, check_positive_int, nonfinite_error, one_thread
from .optim import OPTIMIZERS, make_optimizer

BINARIZE = (None, "dynamic")


# --------------------------------------------------------------------------------------------
# input checks: once for the whole array, never per step

def needs_unit_interval(model):
    """True when the model's likelihood is Bernoulli (VAE) or its loss is BCE (autoencoder)."""
    return getattr(model, "likelihood", None) == "bernoulli" or getattr(model, "loss", None) == "bce"


def check_data(model, x, name="x_train"):
    """``x`` as a C-contiguous (N, D) array of the model's dtype, or a TinyVAEError saying why not.

    Checks: a numeric (not object) array, two dimensions, D = model.input_dim, at least one
    row, every value finite, and values in [0, 1] for a Bernoulli decoder or a BCE loss."""
    if hasattr(x, "x_train") and hasattr(x, "x_test"):          # a whole Dataset
        raise TinyVAEError(f"{name} is a Dataset; pass its arrays: fit(model, ds.x_train, x_val=ds.x_test)")
    x = as_array(x, name)
    if x.dtype == object or x.dtype.kind not in "buif":
        raise TinyVAEError(f"{name} has dtype {x.dtype}; give a numeric array of shape (N, {model.input_dim})")
    if x.ndim == 1:
        guess = ("one example? give it as one row, x.reshape(1, -1)" if x.shape[0] == model.input_dim else
                 f"labels? give the images, an (N, {model.input_dim}) array, one example per row")
        raise TinyVAEError(f"{name} must be a 2-D array (examples, features), got the 1-D shape {x.shape}: {guess}")
    if x.ndim != 2:
        raise TinyVAEError(f"{name} must be a 2-D array (examples, features), got shape {x.shape}; "
                           "flatten images with x.reshape(len(x), -1)")
    if x.shape[1] != model.input_dim:
        raise TinyVAEError(f"{name} has {x.shape[1]} features per example but the model expects "
                           f"input_dim={model.input_dim}; build the model for this data")
    if x.shape[0] == 0:
        raise TinyVAEError(f"{name} holds no examples")
    with np.errstate(over="ignore"):                     # too large for the dtype: said below
        given, x = x, np.ascontiguousarray(x, dtype=model.dtype)
    if not np.isfinite(x).all():
        raise nonfinite_error(name, given, x)
    if needs_unit_interval(model):
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            what = "a Bernoulli decoder" if model.kind == "vae" else "loss='bce'"
            other = "likelihood='gaussian'" if model.kind == "vae" else "loss='mse'"
            raise TinyVAEError(f"{name} has values in [{lo:g}, {hi:g}] but {what} needs data in [0, 1]; "
                               f"{scale_advice(lo, hi)}, or use {other}")
    return x


def data_fingerprint(x):
    """A short digest of an array's shape, dtype and bytes: is this the data of the saved run?"""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# the trainer: all the state of a run

class DivergedError(TinyVAEError):
    """Training produced a non-finite loss, parameters or optimizer moments: most often the
    learning rate is too high (or the data far from unit scale)."""


def _bar_off(progress):
    """tqdm's ``disable``: off when not asked for; on a terminal, or in a Jupyter notebook (whose
    stderr is no terminal, but shows a bar redrawn in place); else off (None: tqdm decides)."""
    if not progress:
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return False if type(shell).__name__ == "ZMQInteractiveShell" else None


def _first_loss_message(loss, x, model):
    """Why the loss of an untrained model is not finite: data too large for its dtype, or else
    the model itself (its settings or parameters)."""
    biggest = float(np.max(np.abs(x)))
    if biggest > 10:                        # raw 0..255 pixels, say: exp(logvar) overflows at once
        return (f"the training loss is {loss} on the first minibatch, before any step: the data (values up "
                f"to {biggest:.3g}) are far from unit scale for this {model.dtype} model; rescale them (to "
                "[0, 1], or to mean 0 and variance 1)")
    settings = "its settings (sigma2, beta) and " if getattr(model, "kind", None) == "vae" else ""
    return (f"the training loss is {loss} on the first minibatch, before any step, with data of ordinary size "
            f"(up to {biggest:.3g}): the model itself gives it; check {settings}that its parameters are "
            "finite, or build it anew")


def _trainable(model):
    if not isinstance(model, Model):
        raise TinyVAEError(f"fit and Trainer take a tinyvae model (VAE, Autoencoder) first, fit(model, x_train), "
                           f"got {type(model).__name__}; build one first, e.g. VAE(784, latent_dim=20)")
    return model


class Trainer:
    """The state of a training run and the loop that advances it.

    ``epoch``      epochs completed
    ``step``       minibatches completed in the current (unfinished) epoch, 0 between epochs
    ``n_steps``    optimizer steps taken in all
    ``sums``       running sums over the current epoch: examples seen, loss and terms times
                   batch size (so the epoch mean weights the last, smaller batch correctly)
    ``history``    per-epoch lists: epoch, loss, the model's terms, val_loss, val_<term>; all
                   of one length, NaN in the val_ lists for epochs trained without x_val
    """

    def __init__(self, model, batch_size=128, lr=1e-3, optimizer="adam", seed=0, binarize=None):
        self.model = _trainable(model)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.optimizer = make_optimizer(optimizer, lr)
        if binarize not in BINARIZE + ("none",):
            raise TinyVAEError(f"binarize must be None, 'none' or 'dynamic' (static binarization happens "
                               f"once, in load_dataset), got {binarize!r}")
        self.binarize = None if binarize == "none" else binarize
        self.reseed(seed)
        self.epoch, self.step, self.n_steps = 0, 0, 0
        self.sums = {}
        self.history = {}
        self.data_id = None

    def __repr__(self):
        last = self.history.get("loss") or [None]
        loss = "" if last[-1] is None else f", last epoch's loss {last[-1]:.4g}"
        where = f"epoch {self.epoch}" + (f" and {self.step} minibatches" if self.step else "")
        return (f"<Trainer: {where} done, {self.n_steps} steps, {self.optimizer.name} lr={self.optimizer.lr:g}, "
                f"batch_size={self.batch_size}, seed={self.seed}{loss}>")

    def reseed(self, seed):
        """Derive the noise and binarization streams from ``seed`` (the order stream is per epoch)."""
        self.seed = check_positive_int("seed", seed, allow_zero=True)
        self.noise_rng = np.random.default_rng([self.seed, 2])
        self.binarize_rng = np.random.default_rng([self.seed, 3])

    def permutation(self, n):
        """The order of the examples in the current epoch: the same on every resume."""
        return np.random.default_rng([self.seed, 1, self.epoch]).permutation(n)

    def validation_rng(self, epoch):
        """The generator of the noise in the validation loss after epoch ``epoch`` (0-based), so
        ``tinyvae eval`` can repeat the figure ``train`` printed, draw for draw."""
        return np.random.default_rng([self.seed, 4, epoch])

    @property
    def mid_epoch(self):
        return self.step > 0

    def check_position(self, x, batch_size):
        """The fingerprint of ``x``, or a TinyVAEError when a run stopped mid-epoch cannot go on
        with these data and this batch size."""
        fingerprint = data_fingerprint(x)
        if self.mid_epoch and self.data_id not in (None, fingerprint):
            raise TinyVAEError(f"this run stopped in the middle of epoch {self.epoch + 1} on other training "
                               "data; continue it with the same data (or start a new run)")
        steps_per_epoch = -(-x.shape[0] // min(batch_size, x.shape[0]))
        if self.step > steps_per_epoch:
            raise TinyVAEError(f"the saved position (minibatch {self.step} of epoch {self.epoch + 1}) does "
                               f"not fit {x.shape[0]} examples in batches of {batch_size}; continue with the "
                               "same data")
        return fingerprint

    # ----------------------------------------------------------------------------------------
    # the loop

    def run(self, x_train, until_epoch, x_val=None, progress=True, callback=None,
            epoch_callback=None, checked=False):
        """Train until ``until_epoch`` epochs are complete (finishing a started epoch first).

        ``callback(trainer)`` runs after every minibatch, ``epoch_callback(trainer)`` after
        every epoch; both inside the Ctrl-C deferral, so a checkpoint they write is never cut
        short. Ctrl-C raises KeyboardInterrupt after the current minibatch (or callback), with
        the trainer consistent: save it and load it to continue. A non-finite loss raises
        TinyVAEError before the bad step is applied. The model is held for this thread meanwhile
        (:func:`tinyvae.model.one_thread`)."""
        with one_thread(self.model), _one_run(self.model):
            return self._run(x_train, until_epoch, x_val, progress, callback, epoch_callback, checked)

    def _run(self, x_train, until_epoch, x_val, progress, callback, epoch_callback, checked):
        from tqdm import tqdm

        model = self.model
        x = x_train if checked else check_data(model, x_train, "x_train")
        xv = None if x_val is None else (x_val if checked else check_data(model, x_val, "x_val"))
        N, D, B = x.shape[0], x.shape[1], min(self.batch_size, x.shape[0])
        self.data_id = self.check_position(x, self.batch_size)
        steps_per_epoch = -(-N // B)

        # reused minibatch buffers: the full batch, and the last one when B does not divide N
        last = N - (steps_per_epoch - 1) * B
        gather = {B: np.empty((B, D), model.dtype), last: np.empty((last, D), model.dtype)}
        bits = ({b: np.empty((b, D), model.dtype) for b in gather} if self.binarize == "dynamic" else None)

        # the bar counts the whole run's minibatches, so a resumed run starts where it stopped
        total = max(until_epoch, self.epoch) * steps_per_epoch
        done = self.epoch * steps_per_epoch + self.step
        # overflow on the way to a NaN is reported below as one clear error, not as warnings
        with defer_sigint() as sigint, np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                tqdm(total=total, initial=done, unit="batch", leave=False, dynamic_ncols=True,
                     desc=f"epoch {min(self.epoch + 1, until_epoch)}/{until_epoch}",
                     disable=_bar_off(progress)) as bar:
            while self.epoch < until_epoch:
                perm = self.permutation(N)                                 # (N,)
                while self.step < steps_per_epoch:
                    if sigint.requested:
                        raise sigint.interrupt()
                    start = self.step * B
                    idx = perm[start:start + B]
                    xb = np.take(x, idx, axis=0, out=gather[len(idx)], mode="clip")   # (b, D)
                    if bits is not None:
                        xb = binarize_batch(xb, self.binarize_rng, out=bits[len(idx)], check=False)
                    loss, _, terms = model.training_loss_and_grads(xb, self.noise_rng)
                    if not math.isfinite(loss):
                        if self.n_steps == 0:                  # no step taken yet: not the lr's doing
                            raise TinyVAEError(_first_loss_message(loss, x, model))
                        raise DivergedError(
                            f"the training loss became {loss} at epoch {self.epoch + 1}, minibatch "
                            f"{self.step + 1}; lower the learning rate (now {self.optimizer.lr:g}, "
                            f"try {self.optimizer.lr / 10:g} or less); this step was not applied, but the "
                            "steps before it may have taken the parameters far off: if a lower rate fails "
                            "too, start again from a new model or a saved checkpoint")
                    self.optimizer.step(model)
                    self._accumulate(len(idx), loss, terms)
                    if not bar.disable:
                        bar.update(1)
                        if self.step % 5 == 0 or self.step == steps_per_epoch:
                            # before the bar, not after it: a narrow terminal cuts the line's end
                            bar.set_description_str(f"epoch {self.epoch + 1}/{until_epoch} loss "
                                                    f"{self.sums['loss'] / self.sums['n']:.3f}", refresh=False)
                    if callback is not None:
                        callback(self)
                self._finish_epoch(xv)
                if epoch_callback is not None:
                    epoch_callback(self)
                if sigint.requested:
                    raise sigint.interrupt()
        return self.history

    def _accumulate(self, b, loss, terms):
        s = self.sums
        if not s:
            s.update(n=0, loss=0.0, **{k: 0.0 for k in terms})
        s["n"] += b
        s["loss"] += loss * b
        for k, v in terms.items():
            s[k] += v * b
        self.step += 1
        self.n_steps += 1

    def _finish_epoch(self, xv):
        """Append the epoch's means (and the validation loss) to the history; reset the sums."""
        if not np.all(np.isfinite(self.model.flat)):
            raise DivergedError(f"the parameters became NaN or infinite in epoch {self.epoch + 1}; lower "
                               f"the learning rate (now {self.optimizer.lr:g})")
        if not self.optimizer.finite():         # Adam's v = g^2 overflows first, then its weight stops
            raise DivergedError(f"the optimizer's moments overflowed in epoch {self.epoch + 1} (gradients "
                               f"beyond the range of {self.model.dtype}), which freezes the parameters they "
                               f"belong to; lower the learning rate (now {self.optimizer.lr:g}), or, if the "
                               "data are far from unit scale, rescale them (then no rate helps)")
        n = self.sums["n"]                          # nothing changes until the validation passed
        row = {"epoch": self.epoch + 1, **{k: v / n for k, v in self.sums.items() if k != "n"}}
        if xv is not None:
            val = self.model.evaluate(xv, self.validation_rng(self.epoch))
            if not math.isfinite(val["loss"]):
                raise DivergedError(f"the validation loss became {val['loss']} after epoch {self.epoch + 1} "
                                   f"while the training loss was {row['loss']:.6g}; lower the learning rate "
                                   f"(now {self.optimizer.lr:g}), or check that x_val is on the scale of "
                                   "x_train")
            row.update({f"val_{k}": v for k, v in val.items()})
        # one entry per epoch in every list: NaN for a term this epoch lacks (no x_val given),
        # and NaN for the earlier epochs of a term that appears now (x_val given on a later call)
        done = len(self.history.get("epoch", []))
        for k in list(self.history) + [k for k in row if k not in self.history]:
            self.history.setdefault(k, [math.nan] * done).append(row.get(k, math.nan))
        self.epoch += 1
        self.step = 0
        self.sums = {}

    # ----------------------------------------------------------------------------------------
    # state for checkpoints: a JSON-able dict and a dict of arrays

    def state_dict(self):
        """(meta, arrays): everything needed to continue, for :mod:`tinyvae.checkpoint`. A
        snapshot: the arrays and dicts are copies, which training goes on without changing."""
        opt = self.optimizer
        hyper = {k: float(getattr(opt, k)) for k in ("lr", "beta1", "beta2", "eps", "momentum") if hasattr(opt, k)}
        opt_arrays = opt.state_dict()
        meta = dict(batch_size=self.batch_size, seed=self.seed, binarize=self.binarize,
                    epoch=self.epoch, step=self.step, n_steps=self.n_steps, sums=dict(self.sums),
                    history={k: [None if v != v else v for v in vs] for k, vs in self.history.items()},
                    data_id=self.data_id,                                    # (NaN as JSON null)
                    noise_rng=self.noise_rng.bit_generator.state,
                    binarize_rng=self.binarize_rng.bit_generator.state,
                    optimizer=dict(name=opt.name, t=int(opt_arrays.pop("t")), **hyper))
        return meta, opt_arrays

    @classmethod
    def from_state(cls, model, meta, arrays):
        """Rebuild a trainer for ``model`` from :meth:`state_dict`'s (meta, arrays)."""
        _check_state(meta, arrays, model)
        o = dict(meta["optimizer"])
        name, t = o.pop("name"), o.pop("t")
        trainer = cls(model, batch_size=meta["batch_size"], lr=o["lr"], optimizer=name,
                      seed=meta["seed"], binarize=meta["binarize"])
        trainer.optimizer = OPTIMIZERS[name](**o)
        trainer.optimizer.load_state_dict({"t": np.array(t), **arrays})
        trainer.epoch, trainer.step, trainer.n_steps = int(meta["epoch"]), int(meta["step"]), int(meta["n_steps"])
        trainer.sums = {k: (int(v) if k == "n" else float(v)) for k, v in meta["sums"].items()}
        trainer.history = {k: [math.nan if v is None else v for v in vs] for k, vs in meta["history"].items()}
        trainer.data_id = meta["data_id"]
        for name in ("noise_rng", "binarize_rng"):
            _check_generator_state(name, meta[name])
        trainer.noise_rng.bit_generator.state = meta["noise_rng"]
        trainer.binarize_rng.bit_generator.state = meta["binarize_rng"]
        return trainer


@contextlib.contextmanager
def _one_run(model):
    """One training run of ``model`` at a time, in its own thread too: ``fit`` called from a
    callback of the model's run (which the thread hold lets through, as it lets the callback
    compute gradients) would change the trainer under that run, whose epoch then went on with
    a stale order of examples. Refused."""
    if getattr(model, "_running", False):
        raise TinyVAEError("this model is being trained by the run that called this one (from a callback?): "
                           "train it after that run returns, or train a copy (copy.deepcopy(model))")
    try:                               # set inside the try: a Ctrl-C can never leave it set
        model._running = True
        yield
    finally:
        model._running = False


def _check_generator_state(name, state):
    """A PCG64 state as NumPy saves it: its two 128-bit integers, the has_uint32 flag (0 or 1) and
    the buffered 32-bit uinteger in range (NumPy 2 refuses an out-of-range 128-bit integer; NumPy 1
    only warned and wrapped it, resuming from a state no run had). ValueError if not."""
    inner = state["state"]
    ranges = ((inner, "state", 2**128), (inner, "inc", 2**128), (state, "has_uint32", 2), (state, "uinteger", 2**32))
    if not all(isinstance(d[k], int) and not isinstance(d[k], bool) and 0 <= d[k] < top for d, k, top in ranges):
        raise ValueError(f"the {name} generator state is out of range")


def _is_count(v):
    return _is_int(v, 0)                    # the JSON checks of checkpoint's run options


def _check_state(meta, arrays, model):
    """A saved training state, checked before anything is rebuilt from it: a hand-edited or
    damaged one gets a TinyVAEError here rather than a KeyError or a numba error in ``fit``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("optimizer"), dict):
        raise TinyVAEError("its training state is not a dictionary with an optimizer entry")
    for key in ("epoch", "step", "n_steps"):
        if not _is_count(meta.get(key)):
            raise TinyVAEError(f"its training state's {key} is {meta.get(key)!r}, not a non-negative integer "
                               "(below 2**62)")
    if not _is_int(meta.get("batch_size"), 1):
        raise TinyVAEError(f"its training state's batch_size is {meta.get('batch_size')!r}, not a positive integer "
                           "(below 2**62)")
    if meta["step"] > meta["n_steps"]:
        raise TinyVAEError(f"its training state is at minibatch {meta['step']} of an epoch after only "
                           f"{meta['n_steps']} steps in all")
    name, t = meta["optimizer"].get("name"), meta["optimizer"].get("t")
    if name not in OPTIMIZERS:
        raise TinyVAEError(f"unknown optimizer {name!r} in the saved state")
    if not _is_count(t):
        raise TinyVAEError(f"its optimizer's step count is {t!r}, not a non-negative integer")
    expected = {"adam": ("m", "v"), "sgd": ("velocity",)}[name]
    if sorted(arrays) != sorted(expected):
        raise TinyVAEError(f"its {name} state holds the arrays {sorted(arrays)}, not {list(expected)}")
    sizes = set()
    for k, a in arrays.items():
        if a.dtype.kind != "f" or a.ndim != 1 or a.size not in (0, model.n_params):
            raise TinyVAEError(f"the optimizer state {k!r} is a {a.dtype} array of shape {a.shape}; it must be "
                               f"a float vector of the model's {model.n_params} parameters (or empty)")
        if not np.all(np.isfinite(a)):
            raise TinyVAEError(f"the optimizer state {k!r} contains NaN or infinite values")
        sizes.add(a.size)
    if len(sizes) > 1:
        raise TinyVAEError(f"the optimizer states {list(expected)} differ in size")
    sums, history = meta.get("sums"), meta.get("history")
    if not isinstance(sums, dict) or (meta["step"] > 0) != bool(sums) or \
            (sums and not {"n", "loss"} <= set(sums)) or \
            not all(_is_count(v) if k == "n" else _is_number(v) for k, v in sums.items()):
        raise TinyVAEError(f"its running sums {sums!r} do not fit minibatch {meta['step']} of the epoch")
    if not isinstance(history, dict) or \
            not all(isinstance(vs, list) and len(vs) == meta["epoch"] for vs in history.values()) or \
            not all(v is None or _is_number(v) for vs in history.values() for v in vs):
        raise TinyVAEError(f"its history is not {meta['epoch']} numbers per entry, one for each epoch done")
    if meta.get("data_id") is not None and not isinstance(meta["data_id"], str):
        raise TinyVAEError(f"its data fingerprint is {meta['data_id']!r}, not a string")


# --------------------------------------------------------------------------------------------
# the function the README and lessons call

def fit(model, x_train, epochs=10, batch_size=None, lr=None, optimizer=None, seed=None,
        x_val=None, progress=True, binarize=None, callback=None, epoch_callback=None,
        checkpoint=None, checkpoint_every=1):
    """Train ``model`` on ``x_train`` (N, D) by minibatch gradient descent; returns the history.

    The history is a dict of per-epoch lists: ``epoch``, ``loss`` (mean training loss), the
    model's loss terms (VAE: ``rec`` and ``kl``; autoencoder: ``rec`` and ``penalty``) and,
    when ``x_val`` is given, ``val_loss``, ``val_rec``, ... It covers the model's whole
    training so far: calling ``fit`` again continues the run -- the optimizer's moments, the
    random streams and the epoch count carry on (kept in ``model.trainer``, and saved by
    ``model.save``), so ``fit(m, x, epochs=3, seed=7); fit(m, x, epochs=2)`` equals
    ``fit(m, x, epochs=5, seed=7)`` bit for bit, and so does ``tv.load`` of a saved run followed
    by ``fit``: settings not given again carry on.

    epochs          how many more epochs to train, counted from the last *finished* one: a
                    notebook cell ``fit(m, x, epochs=20)`` run twice trains 40 epochs (start
                    again from a new model to repeat a run), and after a Ctrl-C in the middle
                    of epoch 2, ``fit(m, x, epochs=3)`` finishes epoch 2, then trains 3 and 4
    batch_size, lr, optimizer, seed, binarize
                    None (the default) keeps the run's own setting; a new run starts from 128,
                    1e-3, "adam", 0 and no binarization. A value given to a run in progress
                    changes it from here on: a new ``seed`` restarts the random streams, a new
                    ``optimizer`` restarts the optimizer, a new ``lr`` keeps the moments. In the
                    middle of an epoch (after a Ctrl-C) the batch size, seed and binarization
                    cannot change, since they decide which examples the epoch has still to see.
                    The noise is drawn in the model's dtype, so one seed gives a float32 and a
                    float64 model different draws: two runs, not one at two precisions.
    optimizer       "adam" | "sgd" | an optimizer object, e.g. ``tv.SGD(lr=0.03, momentum=0.5)``
                    or ``tv.Adam(lr=3e-4, beta1=0.5)``, which brings its own lr: a fresh one
                    starts the optimizer anew, the run's own (``model.trainer.optimizer``) goes on
    binarize        "dynamic": train on a fresh draw x ~ Bernoulli(x_train) per minibatch
                    (x_train in [0, 1]); "none": gray values as given. ``x_val`` is scored as
                    given: binarize it once with ``binarize_batch`` for a binary test set, as
                    ``tinyvae train`` does
    callback        callback(trainer) after every minibatch; epoch_callback(trainer) after every
                    epoch, before the checkpoint is saved. ``trainer.model.flat`` is the live
                    parameter vector: keep ``trainer.model.flat.copy()`` (or
                    ``model.params.copy()``) to remember the best epoch's weights
    checkpoint      a path: save the model and trainer there every ``checkpoint_every`` epochs,
                    after the last epoch and on Ctrl-C (atomically; a failed step never
                    overwrites the last good one)
    progress        a tqdm bar over the minibatches with the running mean loss (on a terminal,
                    or in a Jupyter notebook)

    Every argument and the data are checked before the run changes, so a call that raises
    leaves the model and its trainer as they were. "Bit for bit" holds on one machine with one
    BLAS thread count: OpenBLAS sums a product in another order on another CPU family or with
    another number of threads (``threadpoolctl.threadpool_limits(1)`` around ``fit`` fixes the
    count; ``tinyvae train --threads`` does it for a run), and the two backends agree to rounding.
    """
    _trainable(model)
    with one_thread(model), _one_run(model):   # two fits of one model at once would share its trainer
        return _fit(model, x_train, epochs, batch_size, lr, optimizer, seed, x_val, progress, binarize, callback,
                    epoch_callback, checkpoint, checkpoint_every)


def _fit(model, x_train, epochs, batch_size, lr, optimizer, seed, x_val, progress, binarize, callback,
         epoch_callback, checkpoint, checkpoint_every):
    epochs = check_positive_int("epochs", epochs)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    for name, f in (("callback", callback), ("epoch_callback", epoch_callback)):
        if f is not None and not callable(f):
            raise TinyVAEError(f"{name} must be a function of the trainer, f(trainer), got {f!r}")
    if checkpoint is not None:
        from .checkpoint import target
        target(checkpoint)
    trainer = getattr(model, "trainer", None)
    if trainer is not None and trainer.model is not model:
        trainer = None
    # the settings this call asks for, checked (and the data) before the run changes
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if seed is not None:
        seed = check_positive_int("seed", seed, allow_zero=True)
    if binarize not in (None, "none", "dynamic"):
        raise TinyVAEError(f"binarize must be None, 'none' or 'dynamic' (static binarization happens once, "
                           f"in load_dataset), got {binarize!r}")
    if isinstance(optimizer, tuple(OPTIMIZERS.values())):
        if lr is not None:
            raise TinyVAEError("an optimizer object brings its own learning rate: set it there "
                               f"({type(optimizer).__name__}(lr={lr!r}, ...)) and drop lr=")
        own = trainer is not None and optimizer is trainer.optimizer
        if optimizer.t > 0 and not own:
            raise TinyVAEError(f"this {type(optimizer).__name__} object has taken {optimizer.t} steps for "
                               "another run; give each run a fresh optimizer object")
        new_optimizer = None if own else optimizer
    elif optimizer is not None and (trainer is None or optimizer != trainer.optimizer.name):
        current_lr = 1e-3 if trainer is None else trainer.optimizer.lr
        new_optimizer = make_optimizer(optimizer, current_lr if lr is None else lr)
    else:
        new_optimizer = None                       # keep the run's optimizer (or start Adam)
    new_lr = None if lr is None or new_optimizer is not None else check_nonneg_float("lr", lr, positive=True)
    if trainer is not None and trainer.mid_epoch:
        asked = (("batch size", "batch_size", batch_size, trainer.batch_size),
                 ("seed", "seed", seed, trainer.seed),
                 ("binarization", "binarize", None if binarize is None else binarize == "dynamic",
                  trainer.binarize == "dynamic"))
        changed = [f"{words} ({arg}={old!r})" if arg != "binarize" else
                   f"binarization (binarize={'dynamic' if old else 'none'!r})"
                   for words, arg, value, old in asked if value is not None and value != old]
        if changed:
            raise TinyVAEError(f"the run stopped in the middle of epoch {trainer.epoch + 1}; finish that epoch "
                               f"with the same {' and '.join(changed)}, or leave the argument out to keep "
                               "the run's own")
    dynamic = (binarize == "dynamic") if binarize is not None else (trainer is not None and trainer.binarize == "dynamic")
    x_train = check_data(model, x_train, "x_train")
    if x_val is not None:
        x_val = check_data(model, x_val, "x_val")
    if trainer is not None and trainer.mid_epoch:
        trainer.check_position(x_train, trainer.batch_size)
    if dynamic and (x_train.min() < 0 or x_train.max() > 1):
        raise TinyVAEError(f"binarize='dynamic' draws bits with probabilities x_train, which must lie in [0, 1]; "
                           f"x_train has values in [{float(x_train.min()):g}, {float(x_train.max()):g}]")

    # now change the run
    if trainer is None:
        trainer = Trainer(model, 128 if batch_size is None else batch_size, 1e-3 if lr is None else lr,
                          "adam" if new_optimizer is None else new_optimizer, 0 if seed is None else seed,
                          "dynamic" if dynamic else None)
    else:
        if batch_size is not None:
            trainer.batch_size = batch_size
        if new_optimizer is not None:
            trainer.optimizer = new_optimizer
        elif new_lr is not None:
            trainer.optimizer.lr = new_lr              # the moments are kept
        trainer.binarize = "dynamic" if dynamic else None
        if seed is not None and seed != trainer.seed:
            trainer.reseed(seed)
    model.trainer = trainer

    def on_epoch(t):
        if epoch_callback is not None:       # first: what it changes (beta, say) is what gets saved
            epoch_callback(t)
        if checkpoint is not None and t.epoch % checkpoint_every == 0:
            model.save(checkpoint)

    try:
        trainer._run(x_train, trainer.epoch + epochs, x_val, progress, callback, on_epoch,  # fit holds the run
                     checked=True)
    except KeyboardInterrupt:
        if checkpoint is not None:
            model.save(checkpoint)
        raise
    if checkpoint is not None and trainer.epoch % checkpoint_every != 0:
        model.save(checkpoint)                         # the end of the run, between the every-k saves
    return {k: list(v) for k, v in trainer.history.items()}
