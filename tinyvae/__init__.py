"""tinyvae: autoencoders and variational autoencoders from scratch (NumPy + numba).

A companion to Goodfellow, Bengio & Courville, *Deep Learning*, ch. 14, and Kingma & Welling
(2013): every backward pass is written by hand and checked against finite differences.

    import tinyvae as tv
    ds = tv.load_dataset("digits")
    vae = tv.VAE(input_dim=64, hidden_dims=(128,), latent_dim=2)
    history = tv.fit(vae, ds.x_train, epochs=10)

The names below load on first use (PEP 562), so that ``import tinyvae.cli`` -- what the
``tinyvae`` command runs first -- does not load numba before the command line is ready to
report a Ctrl-C as "interrupted". ``tv.VAE``, ``tv.kernels`` or ``from tinyvae import fit``
work as with an eager import.
"""
import importlib as _importlib
import importlib.util as _importlib_util

__version__ = "0.1.0"

# public name -> the module that defines it
_HOMES = {"TinyVAEError": "errors", "check_gradients": "gradcheck", "check_model": "gradcheck",
          "get_backend": "kernels", "set_backend": "kernels", "MLP": "layers", "SGD": "optim", "Adam": "optim",
          "fit": "train", "load": "checkpoint", "VAE": "vae", "Autoencoder": "autoencoder",
          "Dataset": "data", "load_dataset": "data", "binarize_batch": "data"}

__all__ = ["gradcheck", "kernels", "layers", "estimators", "linear_gaussian", "TinyVAEError", "check_gradients", "check_model",
           "get_backend", "set_backend", "MLP", "SGD", "Adam", "fit", "load", "VAE", "Autoencoder",
           "Dataset", "load_dataset", "binarize_batch"]


def __getattr__(name):
    """Load a public name (or a submodule, ``tv.kernels``) from its module on first use (PEP 562):
    ``import tinyvae`` stays light, and numba and matplotlib load only when something needs them."""
    if name in _HOMES:
        value = getattr(_importlib.import_module(f".{_HOMES[name]}", __name__), name)
    elif name.isidentifier() and not name.startswith("_") and _importlib_util.find_spec(f"{__name__}.{name}"):
        value = _importlib.import_module(f".{name}", __name__)          # a module: tv.kernels, tv.train
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    """The public names, loaded or not, for ``dir(tinyvae)`` and tab completion."""
    return sorted({n for n in globals() if not n.startswith("_")} | set(__all__) | set(_HOMES) | {"__version__"})
