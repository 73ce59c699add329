"""Checkpoints: a model, and optionally the exact state of its training run, in one ``.npz``.

An ``.npz`` is a zip of ``.npy`` arrays. Everything goes in as plain arrays -- no pickles, so
``np.load(..., allow_pickle=False)`` reads it and loading a checkpoint cannot run code:

    format, version     "tinyvae-checkpoint", 1: is this file ours, and which layout
    kind                "vae" | "ae": the class to rebuild
    config              the constructor's keyword arguments, as a JSON string
    params              the flat parameter vector (``model.flat``), in the model's dtype
    epoch, step         epochs completed, minibatches done in the current epoch
    trainer             (optional) the rest of the training state as JSON: the optimizer's
                        hyperparameters and step count, the random generators' states
                        (``bit_generator.state``), running sums, history
    optim.<name>        (optional) the optimizer's arrays: Adam's m and v, SGD's velocity
    run                 (optional) JSON written by ``tinyvae train``: its options

Writes are atomic: the archive goes to a temporary file in the same directory, which is then
renamed over the target (``os.replace``), so a crash or a kill during a save leaves the
previous checkpoint whole.
"""
import json
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import TinyVAEError

FORMAT = "tinyvae-checkpoint"
VERSION = 1
FILENAME = "model.npz"          # the checkpoint inside a run directory
TMP_SUFFIX = ".tmp"             # of the temporary files that atomic writes rename into place


def _is_int(v, least):
    """A JSON whole number from ``least`` up to 2**62 (a count of steps or epochs; a larger one is
    no real run, and overflows the int64 that the kernels take)."""
    return isinstance(v, int) and not isinstance(v, bool) and least <= v < 2**62


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


# The options ``tinyvae train`` keeps in ``run``, each with a test of its JSON value and what
# that value should be: a hand-edited checkpoint gets one clear error, not a TypeError later.
RUN_FIELDS = {
    "epochs": (lambda v: _is_int(v, 1), "a positive integer"),
    "batch_size": (lambda v: _is_int(v, 1), "a positive integer"),
    "latent": (lambda v: _is_int(v, 1), "a positive integer"),
    "threads": (lambda v: _is_int(v, 1), "a positive integer"),
    "checkpoint_every": (lambda v: _is_int(v, 1), "a positive integer"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,      # any size NumPy takes
             "a non-negative integer"),
    "lr": (_is_number, "a number"),
    "beta": (_is_number, "a number"),
    "sigma2": (_is_number, "a number"),
    "hidden": (lambda v: isinstance(v, list) and all(_is_int(d, 1) for d in v), "a list of positive integers"),
    "image_shape": (lambda v: isinstance(v, list) and all(_is_int(d, 1) for d in v), "a list of positive integers"),
    "binarize": (lambda v: v in ("none", "static", "dynamic"), "one of none, static, dynamic"),
    "figures": (lambda v: isinstance(v, bool), "true or false"),
    "data": (lambda v: v is None or isinstance(v, str), "a string"),
    **{k: (lambda v: isinstance(v, str), "a string")
       for k in ("model", "activation", "optimizer", "likelihood", "data_name", "out", "backend", "blas")},
}
RUN_NEEDS = ("data", "epochs", "seed", "binarize", "threads", "checkpoint_every")   # to resume a run


def check_run(run, where):
    """The ``run`` options of a checkpoint, checked: a dict whose known fields have their types."""
    if not isinstance(run, dict):
        raise TinyVAEError(f"{where}: its run options are {type(run).__name__}, not a dictionary; "
                           "restore a copy or train again")
    missing = [k for k in RUN_NEEDS if k not in run] if run.get("data") is not None else []
    if missing:
        raise TinyVAEError(f"{where}: its run options lack {', '.join(missing)}; restore a copy or train again")
    for key, value in run.items():
        if key in RUN_FIELDS and not RUN_FIELDS[key][0](value):
            raise TinyVAEError(f"{where}: its run option {key} is {value!r} but must be {RUN_FIELDS[key][1]}; "
                               "restore a copy or train again")
    return run


def _model_classes():
    from .autoencoder import Autoencoder
    from .vae import VAE
    return {"vae": VAE, "ae": Autoencoder}


def _json_array(obj):
    return np.array(json.dumps(obj, allow_nan=False))


# --------------------------------------------------------------------------------------------
# writing

def save(model, path, trainer_state=None, run=None):
    """Write ``model`` (and its training state) to ``path`` atomically; returns the path written.

    ``path`` is a file name (its directory is created if needed) or a directory, in which case
    the checkpoint is ``path/model.npz``: an existing one, or a name ending in "/" (created).
    ``trainer_state`` is a :class:`tinyvae.train.Trainer`; by default the one ``fit`` left in
    ``model.trainer``, if any.
    ``run`` is a JSON-able dict stored alongside (``tinyvae train`` keeps its options there)."""
    path = target(path)
    if not np.all(np.isfinite(model.flat)):
        raise TinyVAEError(f"the parameters contain NaN or infinite values; not writing {path} "
                           "(a checkpoint already there is kept)")
    trainer = trainer_state if trainer_state is not None else getattr(model, "trainer", None)
    if trainer is not None and not trainer.optimizer.finite():
        raise TinyVAEError(f"the optimizer's moments contain NaN or infinite values (the run has diverged); not "
                           f"writing {path} (a checkpoint already there is kept)")
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "kind": np.array(model.kind),
              "config": _json_array(model.config), "params": model.flat,
              "epoch": np.array(trainer.epoch if trainer else 0), "step": np.array(trainer.step if trainer else 0)}
    if trainer is not None:
        meta, opt_arrays = trainer.state_dict()
        arrays["trainer"] = _json_array(meta)
        arrays.update({f"optim.{k}": np.asarray(v) for k, v in opt_arrays.items()})
    if run is not None:
        arrays["run"] = _json_array(run)
    _atomic_savez(path, arrays)
    return path


def target(path):
    """The file that :func:`save` writes for ``path``, or a TinyVAEError when it cannot be
    written there: not a path, or under a file (checked before training, not after an epoch).
    "~" is the home directory; a file name without ".npz" gets it, as with ``np.savez``."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TinyVAEError(f"a checkpoint path must be a string or a path, got {path!r}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise TinyVAEError("the checkpoint path is empty; give a file name such as run/model.npz")
    path = os.path.expanduser(path)
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        stripped = path.rstrip("/" + os.sep)
        # "run/" -> run/model.npz; a root ("/", "C:\\") keeps its separator
        path = os.path.join(stripped if stripped and os.path.dirname(path) != path else path, FILENAME)
    elif not path.lower().endswith(".npz") and not os.path.isfile(path):
        path += ".npz"          # "out/mine" -> out/mine.npz; an existing file keeps its own name
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):                   # the nearest folder that exists already
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise TinyVAEError(f"cannot write {path}: {parent} is a file, not a folder; choose another path")
    return path


def _atomic_savez(path, arrays):
    """np.savez into a temporary file beside ``path``, flushed to disk, then renamed onto ``path``."""
    atomic_write(path, lambda f: np.savez(f, **arrays), "the previous checkpoint, if any, is unchanged")


def atomic_write(path, write, kept="the previous file, if any, is unchanged"):
    """Call ``write(f)`` on a temporary binary file beside ``path`` (a hidden ``.NAME.*.tmp``),
    flush it to disk, then rename it onto ``path``: readers see the old file or the new one,
    never half of one. On any failure, a Ctrl-C included, the temporary file is removed; an
    OSError (a full disk, a read-only folder) becomes a TinyVAEError that says ``kept``."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=TMP_SUFFIX, dir=directory)
    except OSError as e:
        raise TinyVAEError(f"cannot write {path}: {e.strerror or e}; choose a writable location") from None
    try:
        os.chmod(tmp, _mode_for(path))          # mkstemp makes 0600; these are ordinary files
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                  # atomic: readers see the old file or the new one
        _sync_directory(directory)             # ... and the rename itself survives a power cut
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise TinyVAEError(f"cannot write {path}: {e.strerror or e}; {kept}") from None
        raise


def _mode_for(path):
    """The permissions for a new version of ``path``: those of the file it replaces (a user's own
    ``chmod 600`` is kept), or the usual ones for a new file (0666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(directory):
    """fsync ``directory``, so that a rename in it is on disk; skipped where the platform or the
    file system cannot (Windows, some network file systems): the rename has happened either way."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temporary(name):
    """True for the name of a temporary file that :func:`atomic_write` leaves behind only when
    the process is killed outright (SIGKILL, a power cut) in the middle of a write."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


# --------------------------------------------------------------------------------------------
# reading

@dataclass
class Checkpoint:
    """What :func:`read` found: the model, its trainer (or None) and the run options (or None)."""
    model: object
    trainer: object
    run: dict
    path: str


def resolve(path):
    """The checkpoint file for ``path``: the file itself, or ``path/model.npz`` for a run directory
    ("~" is the home directory, and ``path.npz`` is found for a ``path`` saved without it)."""
    path = os.path.expanduser(os.fsdecode(os.fspath(path)))
    if os.path.isdir(path):
        inner = os.path.join(path, FILENAME)
        if not os.path.isfile(inner):
            if os.path.isfile(os.path.join(path, "history.csv")):
                raise TinyVAEError(f"{path} holds the history of a run but no {FILENAME}: its checkpoint has "
                                   "been deleted or moved; put it back, or train again")
            runs = sorted(os.path.join(path, d) for d in os.listdir(path)
                          if os.path.isfile(os.path.join(path, d, FILENAME)))
            if runs:                                  # the folder of the runs: name them
                shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
                raise TinyVAEError(f"{path} holds no {FILENAME} of its own but the runs {shown}: give one of them")
            raise TinyVAEError(f"{path} holds no {FILENAME}: not a tinyvae run directory; give the "
                               "directory written by 'tinyvae train' or the .npz written by model.save")
        return inner
    if not os.path.exists(path) and os.path.isfile(path + ".npz"):
        return path + ".npz"                                  # what save("out/mine") wrote
    if not os.path.exists(path):
        raise TinyVAEError(f"no such checkpoint: {path}; give a run directory written by 'tinyvae train' "
                           "or the .npz written by model.save")
    return path


def read(path):
    """Load a checkpoint in full: a :class:`Checkpoint` (model, trainer, run, path).

    Every problem -- a missing or unreadable file, not an ``.npz``, a foreign archive, a newer
    format, a parameter vector that does not fit the config -- is a TinyVAEError."""
    path = resolve(path)
    arrays = _read_arrays(path)
    foreign = (f"{path} is not a tinyvae checkpoint (no tinyvae format marker); give the model.npz "
               "written by 'tinyvae train' or model.save")
    if "format" not in arrays or arrays["format"].dtype.kind != "U" or str(arrays["format"]) != FORMAT:
        raise TinyVAEError(foreign)
    corrupt = f"{path} is a corrupt or mismatched tinyvae checkpoint"
    try:
        version = int(arrays["version"])
        kind = str(arrays["kind"])
        config = json.loads(str(arrays["config"]))
        params = arrays["params"]
    except (KeyError, TypeError, ValueError) as e:
        raise TinyVAEError(f"{corrupt} (missing or unreadable entry: {e}); train again or restore a copy") from None
    if version < 1:
        raise TinyVAEError(f"{corrupt}: its format version is {version}; train again or restore a copy")
    if version > VERSION:
        raise TinyVAEError(f"{path} was written by a newer tinyvae (checkpoint format {version}, this one "
                           f"reads up to {VERSION}); upgrade tinyvae")
    classes = _model_classes()
    if kind not in classes:
        raise TinyVAEError(f"{path} holds a model of unknown kind {kind!r} (expected {' or '.join(classes)}); "
                           "it was not written by this tinyvae")
    if not isinstance(config, dict):
        raise TinyVAEError(f"{corrupt}: its config is not a dictionary; train again or restore a copy")
    try:
        model = classes[kind](**config)
    except MemoryError:
        raise TinyVAEError(f"{corrupt}: its config asks for more memory than there is; train again or "
                           "restore a copy") from None
    except (TinyVAEError, TypeError, ValueError) as e:
        what = "a VAE" if kind == "vae" else "an autoencoder"
        raise TinyVAEError(f"{corrupt}: its config does not describe {what} ({e}); train again or "
                           "restore a copy") from None
    if params.dtype != model.dtype:
        raise TinyVAEError(f"{corrupt}: its parameters are {params.dtype} but its config says "
                           f"{model.dtype}; the file does not belong to this config")
    if params.ndim != 1 or params.size != model.n_params:
        raise TinyVAEError(f"{corrupt}: it holds {params.size} parameters ({params.dtype}, shape {params.shape}) "
                           f"but its config needs {model.n_params}; the file does not belong to this config")
    if not np.all(np.isfinite(params)):
        raise TinyVAEError(f"{corrupt}: its parameters contain NaN or infinite values")
    model.flat[...] = params

    trainer = None
    if "trainer" in arrays:
        from .train import Trainer
        try:
            meta = json.loads(str(arrays["trainer"]))
            opt_arrays = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
            trainer = Trainer.from_state(model, meta, opt_arrays)
        except TinyVAEError as e:
            raise TinyVAEError(f"{corrupt}: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise TinyVAEError(f"{corrupt}: its training state is damaged ({type(e).__name__}: {e}); "
                               "restore a copy, or train again") from None
        model.trainer = trainer
    run = None
    if "run" in arrays:
        try:
            run = json.loads(str(arrays["run"]))
        except ValueError:
            raise TinyVAEError(f"{corrupt}: its run options are damaged") from None
        check_run(run, corrupt)
    return Checkpoint(model=model, trainer=trainer, run=run, path=path)


# What a checkpoint holds: nothing else is read. The small entries are a few numbers or JSON
# texts (the history grows by a line an epoch); params and the optimizer's arrays are at most
# MAX_PARAMS float64 numbers each. Sizes are read from the archive's directory before anything
# is unpacked, so a small file cannot make the reader unpack gigabytes.
ENTRIES = ("format", "version", "kind", "config", "params", "epoch", "step", "trainer", "run")
MAX_SMALL_ENTRY = 64 << 20


def _check_members(path, loaded):
    """Refuse an entry tinyvae does not write, or one that would unpack to more than it can hold,
    from the archive's directory alone (``loaded`` is the still unread np.load of ``path``)."""
    from .model import MAX_PARAMS
    members = set(loaded.zip.namelist())
    for name in loaded.files:
        if name not in ENTRIES and not name.startswith("optim."):
            raise TinyVAEError(f"{path} holds an entry {name!r} that tinyvae does not write: it is not a tinyvae "
                               "checkpoint (or it was altered); give the model.npz written by 'tinyvae train' or "
                               "model.save")
        info = loaded.zip.getinfo(name + ".npy" if name + ".npy" in members else name)
        limit = 8 * MAX_PARAMS + 4096 if name == "params" or name.startswith("optim.") else MAX_SMALL_ENTRY
        if info.file_size > limit:
            raise TinyVAEError(f"{path}'s entry {name!r} unpacks to {info.file_size:,} bytes, more than a tinyvae "
                               f"checkpoint holds ({limit:,}); it is damaged or not a tinyvae checkpoint")


def _read_arrays(path):
    """Every array of the archive, read eagerly, without pickles; TinyVAEError on any failure."""
    not_npz = f"{path} is not a tinyvae checkpoint (not an .npz archive); give the model.npz written by " \
              "'tinyvae train' or model.save"
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise TinyVAEError(not_npz) from None
        raise TinyVAEError(f"{not_npz} ({e})") from None
    except (zipfile.BadZipFile, EOFError) as e:
        raise TinyVAEError(f"{path} is a damaged or truncated archive ({e}); restore a copy or train again") from None
    except OSError as e:
        raise TinyVAEError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise TinyVAEError(f"{path} holds a single NumPy array, not a tinyvae checkpoint; give the model.npz "
                           "written by 'tinyvae train' or model.save")
    try:
        with loaded:
            _check_members(path, loaded)
            arrays = {k: loaded[k] for k in loaded.files}
        odd = [k for k, a in arrays.items() if not isinstance(a, np.ndarray)]   # not .npy members
        if odd:
            raise TinyVAEError(f"{path} is not a tinyvae checkpoint ({odd[0]!r} is not a NumPy array); give the "
                               "model.npz written by 'tinyvae train' or model.save")
        return arrays
    except ValueError as e:
        if isinstance(e, TinyVAEError):
            raise
        if "pickle" in str(e).lower():
            raise TinyVAEError(f"{path} holds pickled (object) arrays, which tinyvae will not unpickle; "
                               "it is not a tinyvae checkpoint") from None
        raise TinyVAEError(f"{path} is a damaged or truncated archive ({e}); restore a copy or train again") from None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError) as e:
        raise TinyVAEError(f"{path} is a damaged or truncated archive ({e}); restore a copy or train again") from None
    except MemoryError:                      # an entry's header claims a shape of terabytes
        raise TinyVAEError(f"{path} is damaged: an entry claims more memory than there is; restore a copy "
                           "or train again") from None


def load(path):
    """The model saved at ``path`` (an ``.npz`` or a run directory holding ``model.npz``).

    If the checkpoint holds a training state, it is restored into ``model.trainer``, so
    ``tv.fit(model, x, ...)`` continues the run exactly where it stopped."""
    return read(path).model
