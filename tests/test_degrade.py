"""The degradations: each changes the image as its parameter says, reproducibly, and training-time
augmentation reaches only the training batches."""

import pytest
import torch

from vsa_vision.encoder import object_masks
from vsa_vision.scenes.dataset import RenderedScenes
from vsa_vision.scenes.degrade import CORRUPTIONS, SEVERITIES, Degrade, apply, corrupt


@pytest.fixture(scope="module")
def images():
    return RenderedScenes("default", 16, seed=3, split="test", cache=True)._images


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_every_corruption_changes_the_image_more_with_severity_and_keeps_its_type(images, kind):
    if kind == "jpeg":  # on flat black, JPEG's error is not monotone in quality: measure it on photographs
        from vsa_vision.scenes.foreign import foreign_images

        images = foreign_images("default", 8, seed=0, kinds=["photo"])[0]
    diffs = []
    for sev in (1, 3, 5):
        out = corrupt(images, kind, sev, seed=1)
        assert out.dtype == torch.uint8 and out.shape == images.shape
        diffs.append((out.float() - images.float()).abs().mean().item())
    assert diffs[0] > 0
    assert diffs[0] < diffs[1] < diffs[2], diffs


def test_severity_zero_is_the_identity_and_a_seed_gives_the_same_pixels(images):
    assert torch.equal(corrupt(images, "gaussian_noise", 0), images)
    a, b = corrupt(images, "gaussian_noise", 2, seed=4), corrupt(images, "gaussian_noise", 2, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, corrupt(images, "gaussian_noise", 2, seed=5))


def test_noise_has_the_standard_deviation_it_names():
    grey = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(grey, "gaussian_noise", 2, seed=0).float()
    assert abs(out.std().item() - SEVERITIES["gaussian_noise"][1]) < 0.5


def test_salt_and_pepper_sets_the_fraction_it_names_to_black_or_white():
    grey = torch.full((8, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(grey, "salt_pepper", 5, seed=0)
    changed = (out != 128).any(1).float().mean().item()
    assert abs(changed - SEVERITIES["salt_pepper"][4]) < 0.01
    assert set(out.unique().tolist()) == {0, 128, 255}


def test_brightness_scales_and_a_shift_moves_the_object(images):
    dark = apply(images, "brightness", torch.tensor(0.5))
    assert torch.allclose(dark.float(), (images.float() * 0.5).round(), atol=1)
    img = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    img[..., 30:34, 30:34] = 255
    moved = apply(img, "shift", torch.tensor(4.0), generator=torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    w0, w1 = img[0, 0].float(), moved[0, 0].float()
    c0 = torch.stack([(w0 * ys).sum() / w0.sum(), (w0 * xs).sum() / w0.sum()])
    c1 = torch.stack([(w1 * ys).sum() / w1.sum(), (w1 * xs).sum() / w1.sum()])
    assert abs((c1 - c0).norm().item() - 4.0) < 0.3


def test_bad_input_is_refused_with_the_name_of_what_was_wrong(images):
    with pytest.raises(ValueError, match="corruption"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "blur", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.float(), "blur", 1)
    with pytest.raises(ValueError, match="p"):
        Degrade(p=1.5)


def test_degrade_touches_the_share_it_is_given(images):
    x = images.repeat(8, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Degrade(p=0.0)(x, g), x)
    out = Degrade(p=0.5, second=0.0)(x, g)
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.35 < changed < 0.65


def test_denoised_masks_survive_noise_that_breaks_the_plain_ones(images):
    clean = object_masks(images.float() / 255)[0]
    noisy = corrupt(images, "gaussian_noise", 2, seed=0).float() / 255
    plain = (object_masks(noisy)[0] != clean).float().mean().item()
    denoised = (object_masks(noisy, denoise=True)[0] != clean).float().mean().item()
    assert plain > 0.05 and denoised < 0.02, (plain, denoised)


def test_the_datamodule_degrades_training_batches_only():
    from vsa_vision.scenes.datamodule import SceneDataModule

    dm = SceneDataModule(train_size=32, val_size=8, test_size=8, heldout_size=0, batch_size=32, train_degrade=1.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))

    class T:  # the trainer's state, as Lightning sets it
        training = True

    dm.trainer = T()
    out = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(out[0], batch[0]) and torch.equal(out[1], batch[1])
    T.training = False
    assert dm.on_after_batch_transfer(batch, 0)[0] is batch[0]
