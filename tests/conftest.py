import numpy as np
import pytest
from hypothesis import settings

import tinyvae as tv

settings.register_profile("tinyvae", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("tinyvae")


@pytest.fixture
def backend():
    """Run a test under a chosen backend and restore the previous one afterwards."""
    old = tv.get_backend()
    yield tv.set_backend
    tv.set_backend(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
