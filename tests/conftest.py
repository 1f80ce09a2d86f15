import os
import pickle

import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def shipped():
    """The shipped pipeline (``Pipeline.from_checkpoint()``), loaded once for the session.

    It is loaded with ``torch.load`` and ``pickle`` disabled, so every test that uses it also shows
    the shipped checkpoint loads without unpickling anything. Tests must not change it (``method``,
    ``to(device)``)."""
    from vsa_vision import Pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the shipped checkpoint must load without pickle")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", refuse)
        mp.setattr(pickle, "load", refuse)
        mp.setattr(pickle, "loads", refuse)
        return Pipeline.from_checkpoint()


def problems(n, k=3, dim=1000, count=100, seed=0, **kw):
    from vsa_vision.bench.problems import make_problems

    return make_problems(n, dim, count, seed=seed, k=k, **kw)


def same_files(a, b):
    """Folders ``a`` and ``b`` hold the same file names with the same bytes."""
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def count_shard_writes(monkeypatch):
    """The names of the dataset shards written from now on (``dataset._write_shard`` wrapped)."""
    from vsa_vision.scenes import dataset as dataset_module

    real, written = dataset_module._write_shard, []

    def write(path, images):
        written.append(os.path.basename(path))
        real(path, images)

    monkeypatch.setattr(dataset_module, "_write_shard", write)
    return written


def within(seconds, fn):
    """``fn()``'s result, or a test failure when it runs past ``seconds`` (a loop that never ends, or a
    blocking read): ``fn`` runs in a daemon thread, its exception re-raised here."""
    import threading

    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001  (re-raised in the test's thread)
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"still running after {seconds} s (a loop that never ends, or a blocking read)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def fit_steps(model, images, labels, steps: int, lr: float = 3e-3):
    """``steps`` AdamW steps of a model's own loss on one batch: (the loss at every step, the last step's
    cosine to the targets per image)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        q, factors = model.encode(images)
        loss, cos = model.loss(q, labels, factors)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, cos.detach()
