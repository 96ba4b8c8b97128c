import os

import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session", autouse=True)
def _threads():
    # CAUVADE_TEST_THREADS=1 leaves a core to a benchmark running beside the tests (two runs with two threads
    # each on two cores ran ~15x slower).
    torch.set_num_threads(int(os.environ.get("CAUVADE_TEST_THREADS", "2")))
