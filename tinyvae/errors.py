"""The one exception type for bad input: what is wrong and what to do about it.

The command line turns a :class:`TinyVAEError` into a single line ``error: ...`` and exit
status 2; library users get an ordinary ``ValueError`` subclass."""


class TinyVAEError(ValueError):
    """Bad input from the user (data, options, files): the message says what to do."""
