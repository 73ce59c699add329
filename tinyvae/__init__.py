"""tinyvae: autoencoders and variational autoencoders from scratch (NumPy + numba).

A companion to Goodfellow, Bengio & Courville, *Deep Learning*, ch. 14, and Kingma & Welling
(2013): every backward pass is written by hand and checked against finite differences.

    import tinyvae as tv
    ds = tv.load_dataset("digits")
    vae = tv.VAE(input_dim=64, hidden_dims=(128,), latent_dim=2)
    history = tv.fit(vae, ds.x_train, epochs=10)
"""
from . import gradcheck, kernels, layers
from .data import Dataset, binarize_batch, load_dataset
from .errors import TinyVAEError
from .gradcheck import check_gradients, check_model
from .kernels import get_backend, set_backend
from .layers import MLP
from .optim import SGD, Adam
from .train import fit
from .checkpoint import load
from .vae import VAE
from .autoencoder import Autoencoder

__version__ = "0.1.0"

__all__ = ["gradcheck", "kernels", "layers", "TinyVAEError", "check_gradients", "check_model",
           "get_backend", "set_backend", "MLP", "SGD", "Adam", "fit", "load", "VAE", "Autoencoder",
           "Dataset", "load_dataset", "binarize_batch"]
