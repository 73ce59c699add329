"""Figures of lessons 3-4 (undercomplete and regularized autoencoders); registered with :func:`tinyvae.figures.figure`."""
from .figures import figure  # noqa: F401
