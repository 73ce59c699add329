"""Dense layers, activations and the multilayer perceptron, with backpropagation by hand.

The convention is the one of CS231n's ``layers.py``: ``*_forward(...)`` returns ``(out, cache)``
and ``*_backward(dout, cache)`` returns the gradients, where ``cache`` holds only what the
backward pass reads. Row vectors throughout, one example per row, as in the minibatch example
H = max{0, X W} of Goodfellow et al. sec. 6.5.7: a batch X has shape (N, fan_in) and a dense
layer computes

    A = X W + b,        W (fan_in, fan_out),  b (fan_out,)                       (forward)
    dX = dA W^T,  dW = X^T dA,  db = sum_n dA[n]                               (chain rule)

and an activation H = f(A) backpropagates as dA = dH * f'(A), with f' written through H
(see :mod:`tinyvae.kernels`), so the cache of an activation is just H.
"""
import numpy as np

from . import kernels
from .data import as_generator
from .errors import TinyVAEError
from .kernels import ACTIVATIONS, activation_code


# --------------------------------------------------------------------------------------------
# the functional layers

def dense_forward(x, W, b):
    """A = x W + b.

    Inputs: x (N, fan_in), W (fan_in, fan_out), b (fan_out,).
    Returns: out (N, fan_out), cache (x, W)."""
    out = x @ W + b                 # (N, fan_out)
    return out, (x, W)


def dense_backward(dout, cache):
    """Backward of :func:`dense_forward`.

    Inputs: dout = dL/dA (N, fan_out), cache (x, W).
    Returns: dx (N, fan_in), dW (fan_in, fan_out), db (fan_out,)."""
    x, W = cache
    dx = dout @ W.T                 # (N, fan_out) @ (fan_out, fan_in)
    dW = x.T @ dout                 # (fan_in, N) @ (N, fan_out)
    db = dout.sum(axis=0)           # (fan_out,)
    return dx, dW, db


def activation_forward(a, kind):
    """H = f(A) elementwise for the named activation.

    Inputs: a (N, F), kind in relu | leaky_relu | tanh | sigmoid | softplus | identity.
    Returns: h (N, F), cache (h, kind)."""
    activation_code(kind)           # a clear error for an unknown name
    h = kernels.activation(a, kind)
    return h, (h, kind)


def activation_backward(dh, cache):
    """Backward of :func:`activation_forward`: dA = dH * f'(A), with f' read off H.

    Inputs: dh (N, F), cache (h, kind).  Returns: da (N, F)."""
    h, kind = cache
    return dh * kernels.activation_deriv(h, kind)


# --------------------------------------------------------------------------------------------
# parameters: every array of a model is a view into one flat vector

class Parameters(dict):
    """A model's named arrays (``params`` or ``grads``): views into one flat vector, so they are
    written into, ``params["dec.W0"][...] = W``, and never replaced. ``params["dec.W0"] = W`` would
    leave the flat vector -- what the optimizer updates and a checkpoint saves -- behind, so it
    raises a TinyVAEError instead."""

    def _refuse(self, *args, **kwargs):
        raise TinyVAEError("a model's parameter arrays are views into its flat vector: write into them, "
                           "as in params['dec.W0'][...] = W, instead of replacing them")

    def __setitem__(self, name, value):
        if name in self and value is dict.__getitem__(self, name):
            return                  # params[k] -= step: NumPy changed the array in place, nothing to do
        self._refuse()

    __delitem__ = __ior__ = update = pop = popitem = setdefault = clear = _refuse

    def __reduce__(self):             # copies are built whole, not item by item
        return Parameters, (dict(self),)

    def copy(self):
        """A plain dict of *copies* of the arrays: a snapshot that later training leaves alone
        (``dict(params)`` would hold the live views)."""
        return {name: np.array(array) for name, array in self.items()}


def flat_views(shapes, dtype):
    """One zeroed flat vector and a dict of named, C-contiguous views into it.

    Keeping all parameters (and, in the same layout, all gradients) in one vector lets the
    optimizer update every parameter in a single fused pass."""
    sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape in shapes.items()}
    flat = np.zeros(sum(sizes.values()), dtype=dtype)
    views, start = {}, 0
    for name, shape in shapes.items():
        views[name] = flat[start:start + sizes[name]].reshape(shape)
        start += sizes[name]
    return flat, Parameters(views)


class Workspace:
    """Named scratch arrays reused from call to call, so a training step allocates nothing."""

    def __init__(self):
        self._arrays = {}

    def get(self, key, shape, dtype):
        a = self._arrays.get(key)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self._arrays[key] = np.empty(shape, dtype=dtype)
        return a


def scratch(workspace, key, shape, dtype):
    """A buffer from ``workspace``, or a fresh one when there is no workspace."""
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    return workspace.get(key, shape, dtype)


INITS = ("he", "uniform")      # initialisation schemes of MLP.init


def mlp_shapes(sizes, prefix=""):
    """Parameter shapes of an MLP with layer widths ``sizes`` = (d_0, d_1, ..., d_L)."""
    shapes = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"{prefix}W{i}"] = (fan_in, fan_out)
        shapes[f"{prefix}b{i}"] = (fan_out,)
    return shapes


def _check_sizes(sizes):
    given = sizes
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if (isinstance(given, (str, bytes)) or sizes is None or len(sizes) < 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes)):
        raise TinyVAEError(f"layer sizes must be at least two positive integers in one sequence, such as "
                           f"MLP((64, 32, 2)), got {given!r}")
    return tuple(int(s) for s in sizes)


class MLP:
    """A multilayer perceptron h_{i+1} = f_i(h_i W_i + b_i), h_0 = x, with explicit backprop.

    ``sizes`` = (d_0, ..., d_L) are the layer widths; hidden layers use f_i = ``activation`` and
    the last layer ``final_activation`` (``identity`` by default: a linear output). Parameters are
    named ``{prefix}W{i}`` (d_i, d_{i+1}) and ``{prefix}b{i}`` (d_{i+1},).

    Standalone, ``MLP(sizes, "tanh", seed=0)`` owns its parameters (``.params``, ``.grads``),
    float64 by default (``dtype``; the models default to float32), initialized by ``init``
    ("he" or "uniform", see :meth:`init`) from ``rng`` if given, else from ``seed``.
    Inside a model, ``params`` and ``grads`` are dicts of views into the model's flat vectors.
    """

    def __init__(self, sizes, activation="relu", final_activation="identity", *, prefix="",
                 params=None, grads=None, seed=0, rng=None, dtype="float64", init="he"):
        self.sizes = _check_sizes(sizes)
        if init not in INITS:
            raise TinyVAEError(f"unknown init {init!r}: expected one of {', '.join(INITS)}")
        self.init_scheme = init
        activation_code(activation)
        activation_code(final_activation)
        self.activation, self.final_activation, self.prefix = activation, final_activation, prefix
        self.shapes = mlp_shapes(self.sizes, prefix)
        self.n_layers = len(self.sizes) - 1
        if params is None:
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                dtype = None
            if dtype not in (np.float32, np.float64):
                raise TinyVAEError("an MLP's dtype must be float32 or float64")
            if rng is None:
                try:
                    if isinstance(seed, bool):
                        raise TypeError
                    generator = np.random.default_rng(seed)      # an int, a sequence of ints, or None
                except (TypeError, ValueError):
                    raise TinyVAEError(f"seed must be a non-negative integer (or a list of them), "
                                       f"got {seed!r}") from None
            else:
                generator = as_generator(rng)
            self.flat, params = flat_views(self.shapes, dtype)
            self.grad_flat, grads = flat_views(self.shapes, dtype)
            self.init(params, generator)
        self.params, self.grads = params, grads
        self._settings = (activation, final_activation, prefix, init)     # what a copy is rebuilt from

    def __reduce__(self):
        """copy.deepcopy and pickle of a standalone MLP rebuild it, with its named arrays views into
        its own flat vectors; an MLP inside a model is copied with the model."""
        if not hasattr(self, "flat"):
            raise TinyVAEError("this MLP's parameters belong to a model: copy the model instead")
        activation, final_activation, prefix, init = self._settings
        return _rebuild_mlp, (self.sizes, activation, final_activation, prefix, self.flat.dtype.name, init,
                              self.flat.copy())

    def init(self, params, rng):
        """Draw the initial parameters from ``rng``.

        ``init="he"`` (the default): W ~ N(0, gain / fan_in), gain 2 when the layer's own
        activation is ReLU-like (relu, leaky_relu, softplus), 1 otherwise (LeCun); b = 0. The
        gain follows the layer's own activation, a common convention (PyTorch's
        kaiming_normal_ with nonlinearity="relu" gives the same 2); He et al. (2015) derive the
        factor 2 from the ReLU on a layer's *input*, which differs only at the first and last
        layers.

        ``init="uniform"``: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the default of
        PyTorch's nn.Linear (used to match its reference)."""
        for i in range(self.n_layers):
            kind = self.activation if i < self.n_layers - 1 else self.final_activation
            W, b = params[f"{self.prefix}W{i}"], params[f"{self.prefix}b{i}"]
            if self.init_scheme == "uniform":
                bound = 1.0 / np.sqrt(W.shape[0])
                W[...] = rng.uniform(-bound, bound, W.shape)
                b[...] = rng.uniform(-bound, bound, b.shape)
                continue
            gain = 2.0 if kind in ("relu", "leaky_relu", "softplus") else 1.0
            W[...] = rng.standard_normal(W.shape) * np.sqrt(gain / W.shape[0])
            b[...] = 0

    def layer(self, i):
        """(W_i, b_i, activation_i) of layer i."""
        kind = self.activation if i < self.n_layers - 1 else self.final_activation
        return self.params[f"{self.prefix}W{i}"], self.params[f"{self.prefix}b{i}"], kind

    def forward(self, x, workspace=None):
        """h_{i+1} = f_i(h_i W_i + b_i) for i = 0..L-1, h_0 = x.

        Inputs: x (N, d_0). Returns: out (N, d_L) and cache, the list (h_0, ..., h_L).
        With a ``workspace`` the h_i live in reused buffers (valid until the next call). x is
        taken in the MLP's dtype (a list, or float64 for a float32 MLP, is converted)."""
        x = self._own_dtype(x, "the input of an MLP")
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise TinyVAEError(f"the input of an MLP with sizes {self.sizes} must have shape "
                               f"(N, {self.sizes[0]}), got {x.shape}; give one example per row")
        hs = [x]                                                     # h_0 = x  (N, d_0)
        for i in range(self.n_layers):
            W, b, kind = self.layer(i)
            hW = scratch(workspace, (self.prefix, "h", i), (x.shape[0], W.shape[1]), W.dtype)
            np.matmul(hs[-1], W, out=hW)                             # h_i W_i  (N, d_{i+1})
            # h_{i+1} = f(a_i), a_i = h_i W_i + b_i, written over h_i W_i in place
            hs.append(kernels.bias_activation(hW, b, kind, out=hW))
        return hs[-1], hs

    def backward(self, dout, cache, need_dx=True, workspace=None):
        """Backward of :meth:`forward`: writes dL/dW_i and dL/db_i into ``self.grads``.

        Inputs: dout = dL/dh_L (N, d_L), cache from forward. Returns dL/dx (N, d_0), or None
        when ``need_dx`` is false (the first layer of a network needs no input gradient)."""
        hs = cache
        dh = dout
        for i in reversed(range(self.n_layers)):
            W, _, kind = self.layer(i)
            dW, db = self.grads[f"{self.prefix}W{i}"], self.grads[f"{self.prefix}b{i}"]
            da = scratch(workspace, (self.prefix, "da", i), dh.shape, dh.dtype)
            kernels.activation_backward(dh, hs[i + 1], kind, da=da, db=db)  # dA = dH f'(A), db = sum_n dA
            np.matmul(hs[i].T, da, out=dW)                                  # dW = h_i^T dA
            if i == 0 and not need_dx:
                return None
            dh = scratch(workspace, (self.prefix, "dh", i), hs[i].shape, da.dtype)
            np.matmul(da, W.T, out=dh)                                      # dh_i = dA W^T
        return dh

    def _own_dtype(self, a, what):
        dtype = self.params[f"{self.prefix}W0"].dtype
        if isinstance(a, np.ndarray) and a.dtype == dtype:
            return a                                                 # the models' path: as it is
        try:
            return np.asarray(a, dtype=dtype)
        except (TypeError, ValueError):
            raise TinyVAEError(f"{what} must be a numeric (N, d) array, got {type(a).__name__}"
                               f"{' of dtype ' + str(a.dtype) if isinstance(a, np.ndarray) else ''}") from None

    def __call__(self, x):
        """The output h_L (N, d_L) for x (N, d_0)."""
        return self.forward(x)[0]

    def loss_and_grads(self, x, dout):
        """L = sum(MLP(x) * dout): a scalar whose gradient is backward(dout); for checks."""
        out, cache = self.forward(x)
        dout = self._own_dtype(dout, "dout")
        if dout.shape != out.shape:
            raise TinyVAEError(f"dout must have the output's shape {out.shape}, got {dout.shape}")
        self.backward(dout, cache, need_dx=False)
        return float(np.sum(out * dout)), self.grads

    def __repr__(self):
        return (f"MLP(sizes={self.sizes}, activation={self.activation!r}, "
                f"final_activation={self.final_activation!r})")


def _rebuild_mlp(sizes, activation, final_activation, prefix, dtype, init, flat):
    mlp = MLP(sizes, activation, final_activation, prefix=prefix, dtype=dtype, init=init)
    mlp.flat[...] = flat
    return mlp


__all__ = ["ACTIVATIONS", "dense_forward", "dense_backward", "activation_forward",
           "activation_backward", "flat_views", "Workspace", "scratch", "mlp_shapes", "MLP"]
