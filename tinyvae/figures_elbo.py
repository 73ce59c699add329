"""Figures of lessons 5-7 (latent-variable model, the ELBO, the reparameterization trick); registered with :func:`tinyvae.figures.figure`."""
from .figures import figure  # noqa: F401
