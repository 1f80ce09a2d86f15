import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


def problems(n, k=3, dim=1000, count=100, seed=0, **kw):
    from vsa_vision.bench.problems import make_problems

    return make_problems(n, dim, count, seed=seed, k=k, **kw)
