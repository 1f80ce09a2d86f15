"""The pipeline's input policy: tensors and PIL images of the same pixels give the same input, out of
range tensors are refused, and images given lazily (an iterator, or paths) are opened and shrunk one
batch at a time."""

import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from vsa_vision import Pipeline
from vsa_vision.model import VSAModel
from vsa_vision.scenes import default_schema, render_scene, sample_scenes


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)  # the same untrained weights whatever ran before (an earlier test's seed_everything)
    return Pipeline(VSAModel(dim=256, width=8, features=32, iterations=20), method="brute_force")


def _scene(seed=0):
    return render_scene(default_schema(), sample_scenes(default_schema(), 1, seed=seed)[0])


def _as_uint8_tensor(img):
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


def _odd_images():
    """Non-square and non-64 images: a wide 128 x 64 crop, a tall one, shrinking and enlarging."""
    big = _scene(1).resize((128, 128), Image.Resampling.NEAREST)
    return {"wide 128x64": big.crop((0, 32, 128, 96)), "tall 50x90": _scene(2).resize((50, 90)),
            "square 100": _scene(3).resize((100, 100), Image.Resampling.BILINEAR),
            "square 40": _scene(4).resize((40, 40)),
            "wide 64x32": _scene(5).crop((0, 16, 64, 48))}


@pytest.mark.parametrize("name", list(_odd_images()))
def test_tensor_and_pil_inputs_of_the_same_pixels_give_the_same_input(pipe, name):
    img = _odd_images()[name]
    via_pil = pipe.preprocess([img])
    u8 = _as_uint8_tensor(img)
    assert torch.equal(pipe.preprocess(u8), via_pil)  # padded to a square and resized like the PIL image
    via_float = pipe.preprocess(u8.float() / 255)
    assert via_float.shape == via_pil.shape == (1, 3, 64, 64)
    assert (via_float.float() * 255 - via_pil.float()).abs().max() <= 1.001  # within 1/255 (Pillow rounds uint8)
    assert [r.labels for r in pipe.recognize(u8[None])] == [r.labels for r in pipe.recognize([img])]


def test_a_non_square_crop_reads_the_same_by_tensor_and_by_pil(shipped):
    """A 128 x 64 crop: the tensor path used to stretch it where the PIL path pads it."""
    schema = shipped.schema
    scene = dict(shape="square", colour="blue", size="huge", x="5", y="6", fill="solid")
    crop = render_scene(schema, scene).resize((128, 128), Image.Resampling.NEAREST).crop((0, 32, 128, 96))
    by_pil = shipped.recognize([crop], method="brute_force")[0].labels
    by_tensor = shipped.recognize(_as_uint8_tensor(crop), method="brute_force")[0].labels
    by_float = shipped.recognize(_as_uint8_tensor(crop).float() / 255, method="brute_force")[0].labels
    assert by_pil == by_tensor == by_float
    assert {k: by_pil[k] for k in ("shape", "colour", "fill")} == {"shape": "square", "colour": "blue", "fill": "solid"}


@pytest.mark.parametrize("bad, found", [(lambda x: x * 255, r"\[0, 255\]"), (lambda x: x - 0.5, r"\[-0.5, 0.5\]"),
                                        (lambda x: x.masked_fill(x > 0.5, float("nan")), "not finite")])
def test_float_tensors_outside_0_1_are_refused(pipe, bad, found):
    x = _as_uint8_tensor(_scene()).float() / 255
    x[0, 0, 0], x[0, 0, 1] = 0.0, 1.0  # the range spans exactly [0, 1]
    for size in (64, 100):
        y = bad(torch.nn.functional.interpolate(x[None], size=size)[0] if size != 64 else x)
        with pytest.raises(ValueError, match=found) as e:
            pipe.recognize(y)
        assert "[0, 1]" in str(e.value) and "uint8" in str(e.value)
        with pytest.raises(ValueError, match=found):
            pipe.preprocess(y[None])
    assert pipe.preprocess(x).dtype == torch.float32  # floats in [0, 1] are fine
    assert pipe.preprocess(_as_uint8_tensor(_scene())).dtype == torch.uint8  # so is uint8 0..255
    with pytest.raises(TypeError, match="uint8 or floating"):
        pipe.preprocess(torch.zeros(3, 64, 64, dtype=torch.int64))


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                               (True, TypeError), ("8", TypeError)])
def test_batch_size_is_checked(pipe, batch_size, error):
    images = [_scene(0), _scene(1)]
    with pytest.raises(error, match="batch_size"):
        pipe.recognize(images, batch_size=batch_size)
    with pytest.raises(error, match="batch_size"):
        pipe.encode(images, batch_size=batch_size)
    with pytest.raises(error, match="batch_size"):
        pipe.recognize_files(["a.png"], batch_size=batch_size)


class AliveCounter:
    """Hands out full-size images and counts how many are alive at once (freed when dropped)."""

    def __init__(self, size=1000):
        self.size, self.alive, self.peak, self.made = size, 0, 0, 0

    def _gone(self):
        self.alive -= 1

    def make(self, seed):
        img = _scene(seed % 7).resize((self.size, self.size), Image.Resampling.NEAREST)
        self.made += 1
        self.alive += 1
        self.peak = max(self.peak, self.alive)
        weakref.finalize(img, self._gone)
        return img


def test_an_iterator_of_images_is_shrunk_a_batch_at_a_time(pipe):
    count = AliveCounter()
    lazy = pipe.recognize((count.make(i) for i in range(9)), batch_size=2)
    assert count.made == 9 and len(lazy) == 9
    assert count.peak <= 2, f"{count.peak} full-size images alive at once with batch_size 2"
    eager = pipe.recognize([_scene(i % 7).resize((1000, 1000), Image.Resampling.NEAREST) for i in range(9)])
    assert [r.labels for r in lazy] == [r.labels for r in eager]
    assert pipe.recognize(iter([])) == []


def test_recognize_files_opens_each_file_just_before_its_batch(pipe, tmp_path, monkeypatch):
    import vsa_vision.pipeline as pipeline

    paths = []
    for i in range(7):
        paths.append(str(tmp_path / f"s{i}.png"))
        _scene(i).resize((300, 300), Image.Resampling.NEAREST).save(paths[-1])
    (tmp_path / "junk.png").write_bytes(b"not an image")
    paths[3:3] = [str(tmp_path / "junk.png"), str(tmp_path / "missing.png")]
    count = AliveCounter(size=2000)
    real = pipeline.open_image

    def fake(path):
        real(path)  # the real opener: its errors are the ones reported
        return count.make(paths.index(path))

    monkeypatch.setattr(pipeline, "open_image", fake)
    recs, errors = pipe.recognize_files(paths, batch_size=3)
    assert count.peak <= 3, f"{count.peak} full-size images alive at once with batch_size 3"
    assert [p for p, _ in recs] == [p for p in paths if "s" in p.rsplit("/", 1)[-1][:1]]
    assert [p for p, _ in errors] == [str(tmp_path / "junk.png"), str(tmp_path / "missing.png")]
    assert "not a readable image" in errors[0][1] and "no such file" in errors[1][1]
    monkeypatch.setattr(pipeline, "open_image", real)
    recs2, _ = pipe.recognize_files(paths, batch_size=4)
    direct = pipe.recognize([Image.open(p) for p, _ in recs2])
    assert [r.labels for _, r in recs2] == [r.labels for r in direct]
