"""Learned image decoders: the value indices of an image's attributes ``[B, K]`` to the image
``float [B, 3, S, S]`` in [0, 1], trained beside the encoder (``VSAModel(decoder=width,
decoder_kind=...)``) so that edits of a schema the built-in renderer cannot draw get a picture.

- :class:`ImageDecoder` (``"grid"``): the attribute embeddings projected to a coarse map and
  upsampled. It learns position, colour and size but draws small shapes as blobs (measured on
  sprites: 5% of edits recognised as intended).
- :class:`PlacedDecoder` (``"placed"``): for images of one object on a background. A patch generator
  draws the object (colour and coverage) in a frame of its own from the embeddings, a linear map of
  the same embeddings scales and places that frame on the canvas (a spatial transformer, so
  position is two numbers per value instead of a picture to learn per place), and a learned
  background fills the rest. Its loss weighs the object's pixels above the background's, which
  otherwise dominate an image of one small object.

Both draw the value's typical image: jitter inside a value (a hue bucket, a sub-pixel position) is
averaged. A decoder's ``loss(labels, images)`` is what training minimises (``image_loss`` of its drawing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_int

__all__ = ["DECODER_KINDS", "ImageDecoder", "PlacedDecoder", "make_decoder", "off_background"]

DECODER_KINDS = ("grid", "placed")


def off_background(images: Tensor) -> Tensor:
    """``[B, H, W]``: how far each pixel of float pictures ``[B, C, H, W]`` lies from its picture's
    median colour (the largest difference over the first three channels), so an object on a
    background of one colour stands out of it."""
    rgb = images[:, :3]
    return (rgb - rgb.flatten(2).median(-1).values[:, :, None, None]).abs().amax(1)


class _Decoder(nn.Module):
    """What every decoder shares: one embedding per attribute value, ``draw`` and the input check."""

    def __init__(self, sizes, image_size: int, embed: int) -> None:
        super().__init__()
        sizes = [check_int("decoder: attribute size", n, 1) for n in sizes]
        self.image_size = check_int("decoder: image_size", image_size, 16, 1024)
        if self.image_size % 8:
            raise ValueError(f"decoder: image_size must be a multiple of 8, got {image_size}")
        embed = check_int("decoder: embed", embed, 1)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed) for n in sizes)

    def _embed(self, indices: Tensor) -> Tensor:
        if indices.ndim != 2 or indices.shape[1] != len(self.embeddings):
            raise ValueError(f"decoder: expected value indices [B, {len(self.embeddings)}], got {tuple(indices.shape)}")
        return torch.cat([e(indices[:, k]) for k, e in enumerate(self.embeddings)], 1)

    def loss(self, indices: Tensor, images: Tensor) -> Tensor:
        """The loss of the drawing of ``indices`` against ``images`` (float): :meth:`image_loss`."""
        return self.image_loss(self(indices), images)

    def image_loss(self, drawn: Tensor, images: Tensor) -> Tensor:
        """Mean absolute error (0..1 pixels) of drawings against ``images``."""
        return F.l1_loss(drawn, images)

    @torch.no_grad()
    def draw(self, indices: Tensor) -> Tensor:
        """The images ``uint8 [B, 3, S, S]`` of value indices ``[B, K]``."""
        x = self.forward(indices.to(self.embeddings[0].weight.device))
        return (x * 255).round().clamp(0, 255).to(torch.uint8)


class ImageDecoder(_Decoder):
    """``"grid"``: each attribute's value has a learned embedding (``embed`` numbers); their
    concatenation is projected to a ``width x S/8 x S/8`` map and upsampled three times (nearest,
    3x3 conv, GroupNorm, ReLU; the width halves each time), then a 1x1 conv and a sigmoid; plain L1."""

    def __init__(self, sizes, image_size: int = 64, width: int = 64, embed: int = 32) -> None:
        super().__init__(sizes, image_size, embed)
        self.width = check_int("decoder: width", width, 8)
        self.side = self.image_size // 8
        self.project = nn.Sequential(nn.Linear(embed * len(self.embeddings), width * self.side * self.side), nn.ReLU())
        layers, c = [], width
        for _ in range(3):
            out = max(8, c // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, padding=1, bias=False),
                       nn.GroupNorm(min(8, out), out), nn.ReLU(inplace=True)]
            c = out
        layers += [nn.Conv2d(c, 3, 1)]
        self.up = nn.Sequential(*layers)

    def forward(self, indices: Tensor) -> Tensor:
        h = self.project(self._embed(indices)).view(-1, self.width, self.side, self.side)
        return torch.sigmoid(self.up(h))


class PlacedDecoder(_Decoder):
    """``"placed"``: the object drawn in a ``patch x patch`` frame (``width`` channels at ``patch / 4``,
    upsampled twice), as colour and coverage; the frame scaled and moved onto the canvas by
    ``exp(s), (tx, ty)`` (a linear map of the embeddings, starting at the whole canvas) and laid over
    a learned background. ``object_weight``: how much more an object pixel (one farther than 0.1 from
    its image's median colour) counts in the loss than a background pixel."""

    def __init__(self, sizes, image_size: int = 64, width: int = 64, embed: int = 32, patch: int = 32,
                 object_weight: float = 10.0) -> None:
        super().__init__(sizes, image_size, embed)
        self.width = check_int("decoder: width", width, 16)
        self.patch = check_int("decoder: patch", patch, 8, 1024)
        if self.patch % 4:
            raise ValueError(f"decoder: patch must be a multiple of 4, got {patch}")
        self.object_weight = float(object_weight)
        z, self.side = embed * len(self.embeddings), self.patch // 4
        self.project = nn.Sequential(nn.Linear(z, 256), nn.ReLU(), nn.Linear(256, width * self.side ** 2), nn.ReLU())
        layers, c = [], width
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c // 2, 3, padding=1),
                       nn.GroupNorm(min(8, c // 2), c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 4, 1)]
        self.up = nn.Sequential(*layers)
        self.place = nn.Linear(z, 3)  # log scale, tx, ty of the frame on the canvas
        nn.init.zeros_(self.place.weight)
        nn.init.zeros_(self.place.bias)
        self.background = nn.Parameter(torch.full((1, 3, self.image_size, self.image_size), -3.0))

    def forward(self, indices: Tensor) -> Tensor:
        z = self._embed(indices)
        p = self.up(self.project(z).view(-1, self.width, self.side, self.side))
        cover = torch.sigmoid(p[:, 3:])
        frame = torch.cat([torch.sigmoid(p[:, :3]) * cover, cover], 1)
        log_scale, tx, ty = self.place(z).unbind(1)
        inv = torch.exp(-log_scale)  # canvas coordinates -> frame coordinates
        zero = torch.zeros_like(inv)
        theta = torch.stack([torch.stack([inv, zero, -tx * inv], 1), torch.stack([zero, inv, -ty * inv], 1)], 1)
        grid = F.affine_grid(theta, [len(z), 4, self.image_size, self.image_size], align_corners=False)
        placed = F.grid_sample(frame, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return placed[:, :3] + (1 - placed[:, 3:]) * torch.sigmoid(self.background)

    def image_loss(self, drawn: Tensor, images: Tensor) -> Tensor:
        weight = 1 + self.object_weight * (off_background(images) > 0.1)[:, None].float()
        return ((drawn - images).abs() * weight).sum() / (weight.sum() * 3)


def make_decoder(kind: str, sizes, image_size: int, width: int) -> _Decoder:
    """The decoder of ``kind`` (:data:`DECODER_KINDS`) at ``width``."""
    check_choice("decoder_kind", kind, DECODER_KINDS)
    return (ImageDecoder if kind == "grid" else PlacedDecoder)(sizes, image_size, width=width)
