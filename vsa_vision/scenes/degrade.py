"""The degradations real images carry, as batched tensor operations on ``uint8 [B, 3, H, W]`` images.

Two uses, one definition: :func:`corrupt` applies one corruption at a fixed severity (1 to 5, in the
style of ImageNet-C; the parameters are :data:`SEVERITIES`) for ``vsa-vision bench robustness``, and
:class:`Degrade` draws a random corruption and strength per image for training-time augmentation
(``SceneDataModule(train_degrade=...)``).

Corruptions (the severity table gives the parameter at levels 1..5):

- ``gaussian_noise``: additive pixel noise, standard deviation in 0..255 units;
- ``salt_pepper``: the fraction of pixels set to black or white (each half);
- ``blur``: Gaussian blur, sigma in pixels of a 64-pixel image (scaled with the side);
- ``jpeg``: JPEG compression at a quality (Pillow's encoder: torchvision's is deprecated from 0.29);
- ``brightness``: every value multiplied by a factor below 1 (darker);
- ``contrast``: blended towards the image's mean grey (as ``torchvision``'s ``adjust_contrast``);
- ``gamma``: ``v ** gamma`` on [0, 1] (as ``adjust_gamma``), darkening the mid-tones;
- ``shift``: the whole image translated by a sub-pixel offset in a random direction (black enters),
  in pixels of a 64-pixel image, kept below half the default schema's position spacing (3.2 px) so
  the labels still hold.

Every random draw comes from the ``torch.Generator`` passed in (on the CPU), so a seed gives the same
pixels on every machine; the arithmetic runs on the images' device. That is why these are written
here rather than taken from ``torchvision.transforms.v2``: its random transforms draw from the global
generator and one parameter per call, not a seeded parameter per image of a batch (contrast and gamma
follow its ``adjust_contrast`` and ``adjust_gamma``; its JPEG encoder is deprecated from torchvision
0.29, so JPEG goes through Pillow).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..checks import check_choice, check_float, check_int

__all__ = ["CORRUPTIONS", "SEVERITIES", "Degrade", "corrupt", "apply"]

SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (8.0, 15.0, 22.0, 30.0, 40.0),
    "salt_pepper": (0.005, 0.01, 0.02, 0.035, 0.05),
    "blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    "jpeg": (80.0, 60.0, 40.0, 30.0, 20.0),
    "brightness": (0.8, 0.68, 0.56, 0.45, 0.35),
    "contrast": (0.8, 0.65, 0.5, 0.4, 0.3),
    "gamma": (1.25, 1.5, 1.75, 2.0, 2.5),
    "shift": (0.25, 0.5, 0.75, 1.0, 1.25),
}
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITIES)
# what training draws from, per corruption: a parameter range covering the severities (the lighting ones
# less far: a global darkening of a lone object on black cannot be told from a darker colour, brown from
# orange at 0.6, so training darker than 0.7 teaches the colours to be confused)
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "gaussian_noise": (2.0, 45.0),
    "salt_pepper": (0.002, 0.06),
    "blur": (0.3, 1.7),
    "jpeg": (15.0, 95.0),
    "brightness": (0.7, 1.3),
    "contrast": (0.6, 1.0),
    "gamma": (0.6, 1.8),
    "shift": (0.0, 1.4),
}


def _check_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images: expected uint8 [B, 3, H, W], got {got}")
    return images


def _to_uint8(x: Tensor) -> Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Gaussian blur with one sigma (pixels) per image: a separable kernel per image, grouped conv."""
    B, C, H, W = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigma.to(images.device, torch.float32)[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)                  # [B*C, 2r+1]
    x = images.float().reshape(1, B * C, H, W)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=B * C)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=B * C)
    return _to_uint8(x.reshape(B, C, H, W))


def _shift(images: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Translate each image by (dx, dy) pixels, bilinear, black outside."""
    B, _, H, W = images.shape
    theta = torch.zeros(B, 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx.to(images.device) / W
    theta[:, 1, 2] = -2.0 * dy.to(images.device) / H
    grid = F.affine_grid(theta, [B, 3, H, W], align_corners=False)
    return _to_uint8(F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False))


def _jpeg(images: Tensor, quality: Tensor) -> Tensor:
    """Each image through Pillow's JPEG encoder and decoder at its quality (4:2:0 chroma subsampling,
    Pillow's default: what a camera or a web page does)."""
    q = quality.round().clamp(1, 95).to(torch.int64).tolist()
    arrays = images.permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr, qi in zip(arrays, q):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(qi))
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(images.device)


def apply(images: Tensor, kind: str, param: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``images`` with corruption ``kind`` at parameter ``param`` (one value per image, ``float [B]``)."""
    images = _check_images(images)
    check_choice("corruption", kind, CORRUPTIONS)
    B = images.shape[0]
    param = torch.as_tensor(param, dtype=torch.float32).reshape(-1).expand(B)
    scale = images.shape[-1] / 64.0
    dev = images.device
    if kind == "gaussian_noise":
        noise = torch.randn(images.shape, generator=generator) * param[:, None, None, None]
        return _to_uint8(images.float() + noise.to(dev))
    if kind == "salt_pepper":
        u = torch.rand((B, 1, *images.shape[2:]), generator=generator).to(dev)
        p = param.to(dev)[:, None, None, None]
        out = images.clone()
        out.masked_fill_((u < p / 2).expand_as(out), 0)
        out.masked_fill_(((u >= p / 2) & (u < p)).expand_as(out), 255)
        return out
    if kind == "blur":
        return _blur(images, param * scale)
    if kind == "jpeg":
        return _jpeg(images, param)
    if kind == "brightness":
        return _to_uint8(images.float() * param.to(dev)[:, None, None, None])
    if kind == "contrast":
        x = images.float()
        mean = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean((1, 2))[:, None, None, None]
        c = param.to(dev)[:, None, None, None]
        return _to_uint8(c * x + (1 - c) * mean)
    if kind == "gamma":
        return _to_uint8(255.0 * (images.float() / 255.0) ** param.to(dev)[:, None, None, None])
    # shift: a random direction per image
    angle = torch.rand(B, generator=generator) * (2 * math.pi)
    return _shift(images, param * scale * torch.cos(angle), param * scale * torch.sin(angle))


def corrupt(images: Tensor, kind: str, severity: int, seed: int = 0) -> Tensor:
    """``images`` (``uint8 [B, 3, H, W]``) with corruption ``kind`` at ``severity`` 1..5 (0: unchanged).
    The random parts (noise, salt and pepper, shift direction) come from ``seed``."""
    check_choice("corruption", kind, CORRUPTIONS)
    severity = check_int("severity", severity, 0, 5)
    if severity == 0:
        return _check_images(images).clone()
    g = torch.Generator().manual_seed(int(seed))
    return apply(images, kind, torch.tensor(SEVERITIES[kind][severity - 1]), generator=g)


class Degrade:
    """A random degradation per image, for training: with probability ``p`` an image gets one of
    ``kinds`` (uniformly: a kind listed twice is drawn twice as often) at a parameter drawn uniformly
    from :data:`TRAIN_RANGES`, and with
    probability ``p * second`` a second one on top (e.g. a blurred, then compressed image).

    ``Degrade(p=0.5)(images, generator)`` -> ``uint8 [B, 3, H, W]``; the images it leaves clean are
    returned unchanged, so ``p=0`` is the identity."""

    def __init__(self, p: float = 0.5, kinds: Sequence[str] | None = None, second: float = 0.3) -> None:
        self.p = check_float("p", p, lo=0.0, hi=1.0)
        self.second = check_float("second", second, lo=0.0, hi=1.0)
        self.kinds = tuple(CORRUPTIONS if kinds is None else kinds)
        if not self.kinds:
            raise ValueError("kinds: expected at least one corruption")
        for k in self.kinds:
            check_choice("corruption", k, CORRUPTIONS)

    def __repr__(self) -> str:
        return f"Degrade(p={self.p}, kinds={list(self.kinds)}, second={self.second})"

    def _one_pass(self, images: Tensor, chosen: Tensor, generator: torch.Generator) -> Tensor:
        B = images.shape[0]
        kind_of = torch.randint(len(self.kinds), (B,), generator=generator)
        u = torch.rand(B, generator=generator)
        out = images.clone()
        for j, kind in enumerate(self.kinds):  # a loop over the corruptions, each batched over its images
            rows = torch.nonzero(chosen & (kind_of == j)).flatten()
            if not len(rows):
                continue
            lo, hi = TRAIN_RANGES[kind]
            param = lo + (hi - lo) * u[rows]
            out[rows.to(images.device)] = apply(images[rows.to(images.device)], kind, param, generator=generator)
        return out

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = _check_images(images)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        B = images.shape[0]
        first = torch.rand(B, generator=g) < self.p
        out = self._one_pass(images, first, g)
        again = first & (torch.rand(B, generator=g) < self.second)
        return self._one_pass(out, again, g) if bool(again.any()) else out
