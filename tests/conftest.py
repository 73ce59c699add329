import os
import site
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from hypothesis import settings

import tinyvae as tv

settings.register_profile("tinyvae", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("tinyvae")

# Where the real $HOME keeps what other tools (matplotlib's font cache, numba) need. Pinned
# for the tests, which get a fresh $HOME, so that subprocesses need not rebuild anything.
_REAL_HOME = os.path.expanduser("~")
_KEEP_ENV = {"XDG_CACHE_HOME": os.path.join(_REAL_HOME, ".cache"),
             "XDG_CONFIG_HOME": os.path.join(_REAL_HOME, ".config"),
             "PYTHONUSERBASE": site.getuserbase()}


@pytest.fixture(autouse=True)
def default_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt at once) in every test, whatever the runner
    set: a suite started in the background (``pytest &``) inherits SIGINT ignored, which the
    library respects, and the tests that send themselves SIGINT would then see nothing."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def data_env(tmp_path_factory, monkeypatch):
    """Every test runs with a controlled data environment: no $TINYVAE_DATA and a fresh, empty
    $HOME, so ~/.cache/tinyvae is empty and nothing a user downloaded or set is read (or
    written). tinyvae.data still finds Debian's Fashion-MNIST in /usr/share/datasets (read-only
    and checksummed): the tests that want real data (the bench's) get exactly those files, and
    digits ship with scikit-learn. No test in this process reaches the network: any URL other
    than 127.0.0.1 (the local servers of test_data.py) fails at once as an unreachable host, so
    a missing dataset becomes tinyvae's "could not be downloaded" and the digits fallbacks, not
    a download. (Subprocesses get the fresh $HOME but not this guard; they use digits or
    download=False.) Returns the fresh $HOME; a test may set either variable itself."""
    home = tmp_path_factory.mktemp("home")
    for var, value in _KEEP_ENV.items():
        if var not in os.environ:
            monkeypatch.setenv(var, value)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))              # where Windows looks for ~
    monkeypatch.delenv("TINYVAE_DATA", raising=False)
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url if isinstance(url, str) else url.full_url).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise urllib.error.URLError(f"tests do not use the network ({url})")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    return home


@pytest.fixture
def backend():
    """Run a test under a chosen backend and restore the previous one afterwards."""
    old = tv.get_backend()
    yield tv.set_backend
    tv.set_backend(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
