"""Figures of lesson 8 (training a VAE); registered with :func:`tinyvae.figures.figure`."""
from .figures import figure  # noqa: F401
