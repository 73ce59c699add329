"""Figures of lessons 1-2 (dense backprop, gradient checking); registered with :func:`tinyvae.figures.figure`."""
from .figures import figure  # noqa: F401
