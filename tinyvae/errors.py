"""The one exception type for bad input: what is wrong and what to do about it.

The command line turns a :class:`TinyVAEError` into a single line ``error: ...`` and exit
status 2; library users get an ordinary ``ValueError`` subclass."""


class TinyVAEError(ValueError):
    """Bad input from the user (data, options, files): the message says what to do."""


def scale_advice(lo, hi):
    """How to bring data with values in [lo, hi] into [0, 1], for the errors that need it. The
    maximum is the data's own: 255 for 8-bit images, but 16 for scikit-learn's raw digits, so
    "divide by 255" would leave those in [0, 0.063] and train without a word."""
    if lo < 0:
        return "rescale it, (x - x.min()) / (x.max() - x.min())"
    if hi < 1.001:                            # 1.0000001: rounding, not another scale
        return f"its largest value is {hi:.9g}, a rounding error above 1: clip it, np.clip(x, 0, 1)"
    return (f"divide it by its maximum, x / x.max() (here {hi:g}; 255 for 8-bit images, 16 for "
            "scikit-learn's raw digits)")
