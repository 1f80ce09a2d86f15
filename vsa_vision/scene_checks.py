"""Fixed checks of an answer against the image, beside the fitted rules of :mod:`vsa_vision.trust`.

Every object of a schema has one colour, is drawn where the answer says, and has a place of its own.
Two objects drawn at one place (an outline with another object inside it) break this whatever the
answer's fitted score: read as one object, the image holds two colours where the answer's object has
one (:func:`colour_spread`); read as the outline alone or the inside alone, the image holds ink the
answer does not draw (:func:`unexplained_ink`); read as two objects, the answer puts them at one
place (:func:`shared_place`). :func:`refused` says which answers a check refuses; the limits were
chosen on the shipped models' degraded scenes read right (``docs/BENCHMARKS.md``, knowing when not
to answer).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .encoder import gaussian_blur5, object_masks


def as_uint8_cpu(images: Tensor) -> Tensor:
    """``uint8 [B, 3, H, W]`` on the CPU: floating images are taken as values in [0, 1]."""
    images = images.detach().cpu()
    return images if images.dtype == torch.uint8 else (images.float().clamp(0, 1) * 255).round().to(torch.uint8)


def shape_components(masks: Tensor) -> tuple[np.ndarray, int]:
    """The separate shapes of silhouettes ``masks`` ``float [B, 1, H, W]``: SciPy's labels ``[B, H, W]``
    (0: background) of their 8-connected components, the whole batch at once, each image its own plane,
    and their number."""
    from scipy.ndimage import label

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within an image, never across images
    return label(masks[:, 0].bool().numpy(), structure=structure)

__all__ = ["CHECKS", "CLEAN_BACKGROUND", "INK_LIMIT", "MIN_AREA", "PLACE_LIMIT", "REFUSED_SCORE", "SPREAD_DEVIATION",
           "SPREAD_LIMIT", "as_uint8_cpu", "colour_spread", "refused", "shape_components", "shared_place",
           "unexplained_ink"]

#: the colour check (:func:`colour_spread`): a pixel deviates when its colour proportions are farther than
#: this (L1) from the mean of its object's colour group; an answer is refused when more than
#: ``SPREAD_LIMIT`` of its objects' pixels deviate (0 on clean, blurred, darkened, gamma-shifted and moved
#: scenes; 1 of 175 JPEG quality-20 scenes read right and known refused; 0.45 for the outlined square
#: with a disc inside it read as one square)
SPREAD_DEVIATION, SPREAD_LIMIT = 0.25, 0.2
#: the ink check (:func:`unexplained_ink`): an answer is refused when more than this share of the image's
#: ink is not drawn by it (on the shipped models' degraded scenes read right: at most 0.12 on 99% of them
#: under every corruption, 0.25 at worst, salt and pepper; 0.2 to 0.5 for two objects at one place read
#: as one, or a shape missed)
INK_LIMIT = 0.3
#: the place check (:func:`shared_place`): any two objects of an answer at one place
PLACE_LIMIT = 0.0
#: the least area of a shape, in pixels at 64 px: what :func:`vsa_vision.trust.count_blobs` counts as a shape
#: and :func:`unexplained_ink` counts when no object of the answer overlaps it (the smallest outline of the
#: default schema covers about 30)
MIN_AREA = 12.0
#: the background level (:func:`~vsa_vision.trust.background_level`) up to which a shape no object of the
#: answer overlaps counts as a missed object (JPEG at quality 20: 0.002 to 0.006; noise of std 15 / 255: 0.05)
CLEAN_BACKGROUND = 0.03
#: the names of the fixed checks' columns (:func:`vsa_vision.trust.trust_checks`)
CHECKS = ("colour_spread", "unexplained_ink", "shared_place")


def colour_spread(schema, images: Tensor, rendered: Tensor) -> Tensor | None:
    """``[B]``: the share of the image's ink under the answer's objects whose colour disagrees with
    the rest of its object (images and renders ``[B, 3, H, W]``, ``uint8`` or floating in [0, 1], any
    device; measured on the CPU). Each pixel where the render of the answer draws an object and the image
    has ink is grouped by the palette colour the render draws there; a pixel deviates when its colour
    proportions ``rgb / (r + g + b)`` (image lightly blurred) lie farther than
    :data:`SPREAD_DEVIATION` (L1) from its group's mean. Every object of a schema has one colour, so a
    clean or uniformly degraded scene (darker, lower contrast, another gamma: the proportions of one
    colour stay one colour) measures 0, and two objects drawn at one place in two colours, read as
    one, measure the share of the minority colour. None when the schema has no colour attribute the
    renderer draws."""
    k = schema.by_role("colour") if schema.renderable else None
    if k is None:
        return None
    images, rendered = as_uint8_cpu(images), as_uint8_cpu(rendered)
    if not len(images):
        return torch.zeros(0, dtype=torch.float64)
    palette = torch.tensor(schema.attributes[k].render_params(), dtype=torch.float32) / 255.0
    pchrom = palette / palette.sum(1, keepdim=True).clamp_min(1e-3)                      # [C, 3]
    a = gaussian_blur5(images.float() / 255.0, 1.0)
    b = rendered.float() / 255.0
    ca = a / a.sum(1, keepdim=True).clamp_min(0.05)
    cb = b / b.sum(1, keepdim=True).clamp_min(0.05)
    ink = ((b.sum(1) > 0.45) & (a.sum(1) > 0.3)).flatten(1)                              # [B, HW]
    B, C = images.shape[0], len(palette)
    drawn = cb.permute(0, 2, 3, 1).reshape(B, -1, 3)[ink]                                 # [n, 3] at the ink
    key = torch.cdist(drawn, pchrom, p=1).argmin(1)                                      # the render's colour
    group = torch.arange(B)[:, None].expand_as(ink)[ink] * C + key                       # [n] (image, colour)
    pix = ca.permute(0, 2, 3, 1).reshape(B, -1, 3)[ink]                                   # [n, 3]
    sums = torch.zeros(B * C, 3).index_add_(0, group, pix)
    counts = torch.zeros(B * C).index_add_(0, group, torch.ones(len(group)))
    mean = sums / counts.clamp_min(1.0)[:, None]
    off = ((pix - mean[group]).abs().sum(1) > SPREAD_DEVIATION).float()
    deviating = torch.zeros(B).index_add_(0, group // C, off)
    return (deviating / ink.sum(1).clamp_min(1)).double()


def unexplained_ink(images: Tensor, rendered: Tensor, image_masks: tuple[Tensor, Tensor] | None = None,
                    background: Tensor | None = None, render_masks: tuple[Tensor, Tensor] | None = None,
                    components: tuple[np.ndarray, int] | None = None) -> Tensor:
    """``[B]``: the share of the image's ink (images and renders as for :func:`colour_spread`) that
    lies farther than two pixels from any ink of the answer's render: an object inside an outline the
    answer reads alone, an outline around an object it reads alone, a shape it misses. The ink counted
    is the image's inside the answer's silhouettes
    (widened by a pixel) and, on a clean background (``background``, None: not known to be clean;
    :func:`~vsa_vision.trust.background_level`, at most :data:`CLEAN_BACKGROUND`; pixel noise joins
    specks into shapes and onto the objects), that of every shape (connected component of the image's
    silhouette, 8-connected) an object of the answer overlaps or that covers at least :data:`MIN_AREA`
    pixels at 64 px (scaled with the side). Ink is the silhouette less its holes
    (:func:`~vsa_vision.encoder.object_masks`; the image's denoised, so noise and compression add
    little, or ``image_masks``, its ``(silhouette, holes)`` when already computed; ``render_masks``
    the same of the render; ``components`` the image silhouette's :func:`shape_components`)."""
    images, rendered = as_uint8_cpu(images), as_uint8_cpu(rendered)
    if not len(images):
        return torch.zeros(0, dtype=torch.float64)
    sa, ha = object_masks(images.float() / 255.0, denoise=True) if image_masks is None else image_masks
    sb, hb = object_masks(rendered.float() / 255.0, denoise=True) if render_masks is None else render_masks
    parts, n = shape_components(sa) if components is None else components
    near_answer = F.max_pool2d(sb, 3, 1, 1)
    touched = np.unique(parts[(parts > 0) & near_answer[:, 0].bool().numpy()])
    big = np.nonzero(np.bincount(parts.ravel(), minlength=n + 1) >= MIN_AREA * (parts.shape[-1] / 64.0) ** 2)[0]
    shapes = torch.from_numpy(np.isin(parts, np.union1d(touched, big)) & (parts > 0))[:, None].to(sa.dtype)
    # on a noisy background (or one not measured) specks join into shapes and onto the objects
    clean = torch.zeros(len(sa), dtype=torch.bool) if background is None else \
        (background <= CLEAN_BACKGROUND) & (sa.flatten(1).mean(1) < 0.5)  # (silhouettes covering it all: noise)
    shapes = shapes * clean.to(sa.dtype)[:, None, None, None]
    region = torch.maximum(shapes, near_answer) * (sa - ha)
    far = region * (1 - F.max_pool2d(sb - hb, 5, 1, 2))
    return (far.flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1.0)).double()


def shared_place(schema, objects: list[Tensor]) -> Tensor:
    """``[B]``: 1 where two objects of an answer (``objects``, one ``[m, K]`` tensor of value indices a
    scene) lie closer than the schema's spacing (at least one cell apart: its scenes hold objects at
    distinct places), else 0; 0 for a schema without positions."""
    axes = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    if not axes or not objects:
        return torch.zeros(len(objects), dtype=torch.float64)
    spacing = max(1, int(getattr(schema, "spacing", 1)))
    at = torch.nn.utils.rnn.pad_sequence([o[:, axes].long().cpu() for o in objects], batch_first=True)  # [B, M, 2]
    real = torch.arange(at.shape[1])[None] < torch.tensor([len(o) for o in objects])[:, None]          # [B, M]
    pair = real[:, :, None] & real[:, None, :] & ~torch.eye(at.shape[1], dtype=torch.bool)
    near = (at[:, :, None] - at[:, None]).abs().amax(-1) < spacing
    return (near & pair).flatten(1).any(1).double()


#: the known score of an answer a check refuses (below any threshold a rule fits)
REFUSED_SCORE = -1e3


def refused(checks: Tensor) -> Tensor:
    """``[B]`` bool: the answers a fixed check refuses (``checks [B, 3]`` of :data:`CHECKS`, from
    :func:`vsa_vision.trust.trust_checks`): a colour spread above :data:`SPREAD_LIMIT`, unexplained
    ink above :data:`INK_LIMIT`, or two objects at one place."""
    return (checks[:, 0] > SPREAD_LIMIT) | (checks[:, 1] > INK_LIMIT) | (checks[:, 2] > PLACE_LIMIT)
