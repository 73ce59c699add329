"""What every tinyvae model shares: named parameter arrays in one flat vector, input checks.

A model keeps all its parameters as views into one flat vector ``flat`` (and its gradients,
in the same layout, in ``grad_flat``), so ``model.params["enc.W0"]`` is a live array and the
optimizer updates every parameter in one fused pass over ``flat``. The protocol every model follows (``fit``, checkpoints, the command line and the gradient
checker rely on it):

    kind                       "vae" | "ae": which class to rebuild from a checkpoint
    config                     the constructor's keyword arguments, a read-only dict (JSON-serialisable)
    input_dim, dtype           D, and float32 | float64
    params, grads              dicts of live views into ``flat`` and ``grad_flat``
    loss_and_grads(x, ...)     (loss, grads) with every noise passed in explicitly
    training_loss_and_grads(x, rng)
                               (loss, grads, terms): one training step on a checked batch, noise
                               drawn from ``rng``; terms is a dict of floats (VAE: rec, kl)
    evaluate(x, rng=None)      {"loss": ..., **terms}: batch means over x, no gradients

Threads may share a model to encode, evaluate or sample; its gradient methods and a training
run, which write its one set of work buffers, gradients and optimizer state, take one thread at
a time (a second is refused, see ``one_thread``): train in parallel with one model per thread.
"""
import contextlib
import functools
import threading

import numpy as np

from .errors import TinyVAEError
from .layers import Workspace, flat_views

DTYPES = ("float32", "float64")
MAX_PARAMS = 2**27          # ~1.3e8 parameters: 1.1 GB in float32 with the gradients (the classic VAE has 0.65e6)


def as_array(x, name):
    """np.asarray(x), with a TinyVAEError for what NumPy cannot make one array of: a ragged
    list, or a tuple such as (x_train, y_train)."""
    try:
        return np.asarray(x)
    except ValueError:
        raise TinyVAEError(f"{name} is not one rectangular array (a ragged list, or a pair such as "
                           f"(x, y)?); give a single (N, D) array") from None


def nonfinite_error(name, given, cast, advice="clean or drop those examples"):
    """The TinyVAEError for NaN or infinite values in ``cast``, the array ``given`` converted to
    the model's dtype: when the values given were finite, they were too large for that dtype."""
    bad = ~np.isfinite(cast)
    given = np.asarray(given)
    if given.dtype.kind in "fc":
        huge = bad & np.isfinite(given)
        if huge.any():
            big = float(np.max(np.abs(given[huge])))
            return TinyVAEError(f"{name} has values up to {big:.3g}, beyond the range of {cast.dtype} "
                                f"(largest {float(np.finfo(cast.dtype).max):.3g}); rescale the data, or build "
                                "the model with dtype='float64'")
    first = np.argwhere(bad)[0]
    where = f" (the first in row {first[0]})" if cast.ndim == 2 else ""
    return TinyVAEError(f"{name} contains {int(bad.sum())} NaN or infinite values{where}; {advice}")


def check_dtype(dtype):
    if dtype is None:                        # np.dtype(None) would silently be float64
        raise TinyVAEError("dtype must be float32 or float64, got None")
    try:
        name = np.dtype(dtype).name                    # "float32", "f4", np.float32, float, "double"
    except (TypeError, ValueError):
        name = None
    if name not in DTYPES:
        raise TinyVAEError(f"dtype must be float32 or float64, got {dtype!r}")
    return np.dtype(name)


def check_positive_int(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        what = "a non-negative" if allow_zero else "a positive"
        raise TinyVAEError(f"{name} must be {what} integer, got {value!r}")
    return int(value)


def check_seed(value, name="seed", allow_sequence=False):
    """A random seed: a non-negative integer (a NumPy integer too, not a bool), else a TinyVAEError.

    With ``allow_sequence`` a list or tuple of such integers is accepted as well, as NumPy's
    ``default_rng([seed, stream])`` takes it."""
    if allow_sequence and isinstance(value, (list, tuple)) and value:
        return [check_seed(v, name) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TinyVAEError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_nonneg_float(name, value, positive=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TinyVAEError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        what = "positive" if positive else "non-negative"
        raise TinyVAEError(f"{name} must be a finite, {what} number, got {value!r}")
    return v


def check_hidden_dims(hidden_dims):
    if isinstance(hidden_dims, (str, bytes)):
        raise TinyVAEError(f"hidden_dims must be a sequence of positive integers such as (128,) or "
                           f"[256, 64], got the string {hidden_dims!r}")
    try:
        dims = tuple(hidden_dims)
    except TypeError:
        one = (f"; for one hidden layer of {hidden_dims} write ({hidden_dims},), and give the latent or code "
               "size by name (latent_dim=, code_dim=)") if isinstance(hidden_dims, (int, np.integer)) else ""
        raise TinyVAEError(f"hidden_dims must be a sequence of positive integers, got {hidden_dims!r}{one}") from None
    for d in dims:
        check_positive_int("each hidden width", d)
    return tuple(int(d) for d in dims)


class Setting:
    """A model's setting, read from ``model.config``; assigning it is refused. Settings are fixed
    when the model is built: they shape its parameters, or are saved with it from ``config``,
    so ``ae.noise_std = 0.3`` would have trained a model that saves and copies as another.
    (``VAE.beta`` may change between epochs: it is a property of its own.)"""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        return self if model is None else model.config[self.name]

    def __set__(self, model, value):
        raise TinyVAEError(f"{type(model).__name__.lower()}.{self.name} is fixed when the model is built; build "
                           f"another: {type(model).__name__}(..., {self.name}={value!r}) (and copy the weights "
                           "with new.flat[...] = old.flat if the shapes agree)")


@contextlib.contextmanager
def one_thread(model):
    """Hold ``model`` for the calling thread: its gradient methods and a training run write its
    one set of work buffers, gradients and optimizer state, so a second thread inside them at
    once would mix the two threads' numbers without a sign. The second thread is refused
    instead. The same thread may enter again (a callback of ``fit`` computing gradients), and a
    Ctrl-C that lands between taking the model and the ``try`` can leave it held only for other
    threads, never for the one that was stopped. (The other methods allocate their own arrays:
    any number of threads may encode, evaluate or sample with one model.)"""
    if not model._computing.acquire(blocking=False):
        raise TinyVAEError(f"this {type(model).__name__} is training or computing gradients in another thread, and "
                           "both would write its one set of work buffers and gradients; give each thread its own "
                           "model (copy.deepcopy(model))")
    try:
        yield model
    finally:
        model._computing.release()


def one_thread_at_a_time(method):
    """A gradient method run under :func:`one_thread`."""
    @functools.wraps(method)
    def guarded(model, *args, **kwargs):
        with one_thread(model):
            return method(model, *args, **kwargs)
    return guarded


class Config(dict):
    """A model's settings: the constructor's keyword arguments, read-only (hidden widths as
    tuples). It reads, compares, copies and serialises as a dict; ``dict(model.config)`` is a
    plain one to change and build another model from. Writing into it would give a model whose
    arrays, saved config and printout disagree, as assigning a setting would (see Setting)."""

    def _refuse(self, *args, **kwargs):
        raise TinyVAEError("model.config is read-only: the settings are fixed when the model is built; build "
                           "another, e.g. tv.VAE(**{**vae.config, 'latent_dim': 3}) (and copy the weights with "
                           "new.flat[...] = old.flat if the shapes agree)")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _refuse

    def __reduce__(self):                        # copy and pickle rebuild it whole, not key by key
        return Config, (dict(self),)

    def _set(self, name, value):
        """For the model's own changeable settings (VAE.beta) only."""
        dict.__setitem__(self, name, value)


class Model:
    """Base class: flat parameter storage, config, input validation."""

    kind = "model"

    @property
    def config(self):
        """The constructor's keyword arguments, a read-only dict, as ``save`` writes them."""
        return self._config

    @config.setter
    def config(self, value):
        Config._refuse(value)

    def _allocate(self, shapes, dtype):
        """Create ``flat``/``params`` and ``grad_flat``/``grads`` for the named shapes."""
        self.dtype = np.dtype(dtype)
        n = sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes.values())   # before allocating
        if n > MAX_PARAMS:
            gb = 2 * n * self.dtype.itemsize / 1e9
            raise TinyVAEError(f"this model would have {n:,} parameters ({gb:,.0f} GB with their gradients), "
                               f"more than tinyvae's limit of {MAX_PARAMS:,}; choose a smaller input_dim "
                               "or smaller hidden widths")
        self._flat, self._params = flat_views(shapes, self.dtype)
        self._grad_flat, self._grads = flat_views(shapes, self.dtype)
        self.workspace = Workspace()
        self._computing = threading.RLock()                 # see one_thread

    # The parameters and gradients live in one flat vector each, which the layers, the optimizer
    # and a checkpoint all share: a model's arrays are written into, never replaced.
    flat = property(lambda self: self._flat, lambda self, value: _refuse_replace(self, "flat", value),
                    doc="All parameters in one vector, (n_params,): the optimizer updates it in one pass.")
    params = property(lambda self: self._params, lambda self, value: _refuse_replace(self, "params", value),
                      doc="The named parameter arrays: views into ``flat``.")
    grad_flat = property(lambda self: self._grad_flat,
                         lambda self, value: _refuse_replace(self, "grad_flat", value),
                         doc="All gradients in one vector, in the layout of ``flat``.")
    grads = property(lambda self: self._grads, lambda self, value: _refuse_replace(self, "grads", value),
                     doc="The named gradient arrays: views into ``grad_flat``.")

    @property
    def n_params(self):
        """The number of trainable numbers, P = model.flat.size."""
        return int(self.flat.size)

    def _input(self, x, name="x", dim=None):
        """x as a (N, dim) array of this model's dtype; a clear error otherwise."""
        dim = self.input_dim if dim is None else dim
        x = as_array(x, name)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                                     or x.dtype == bool):
            raise TinyVAEError(f"{name} must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 1 and x.shape[0] == dim:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != dim:
            raise TinyVAEError(f"{name} must have shape (N, {dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise TinyVAEError(f"{name} holds no rows (shape {x.shape}); give at least one example")
        with np.errstate(over="ignore"):                 # too large for the dtype: said below
            given, x = x, np.ascontiguousarray(x, dtype=self.dtype)
        if not np.all(np.isfinite(x)):
            raise nonfinite_error(name, given, x, advice="give finite values")
        return x

    def __reduce__(self):
        """copy.deepcopy and pickle rebuild the model from its config and a copy of ``flat``, so the
        copy's named arrays are views into its own flat vector (a copy of the views would come
        apart from it). The training state (``model.trainer``) is not copied: use ``save``."""
        return _rebuild, (type(self), dict(self.config), self.flat.copy())

    def save(self, path):
        """Write a checkpoint (see :func:`tinyvae.checkpoint.save`)."""
        from .checkpoint import save
        return save(self, path)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def _refuse_replace(model, name, value):
    """Assigning ``model.flat = v`` (or params, grads) would leave the layers and the optimizer
    on the old arrays, the model training one vector and evaluating another: refused. (``model.flat
    += 1`` assigns the same array back after changing it in place: nothing to do.)"""
    if value is getattr(model, "_" + name):
        return
    how = {"flat": "model.flat[...] = other.flat",
           "params": "model.params['enc.W0'][...] = W, or model.flat[...] = other.flat",
           "grad_flat": "model.grad_flat[...] = g", "grads": "model.grads['enc.W0'][...] = g"}[name]
    raise TinyVAEError(f"model.{name} cannot be replaced: the model's layers, its optimizer and its "
                       f"checkpoints share the arrays it holds; write into them instead: {how}")


def _rebuild(cls, config, flat):
    model = cls(**config)
    model.flat[...] = flat
    return model
