"""An encoder of scenes of several objects not tied to a grid of slots: dense per-location heads.

A CNN trunk gives a feature map at a stride of 8 pixels; every location of it predicts whether an
object's centre lies in its 8 x 8 pixel cell (a presence logit) and, from the same features, that
object's factor vectors for every attribute, positions included (the location's coordinates are
among its features, so position is read, not assigned). The output is one vector, the bundle

    q = sum_l sigmoid(p_l) prod_k f_{l,k}

over the ``readout`` locations of highest presence (the sum over all locations, less terms whose
weight is near zero: an object has one centre, and the presence gates of the others are trained
to 0). A decomposer reads only ``q``.

Turn votes (``turn_votes``, eval mode): the image is also read turned by one to three quarter turns,
each view's feature map turned back onto the original's locations, and the attributes that a quarter
turn keeps (every one but the position and the rotation) are read from the mean of the views'
log-probabilities at each location. The rotation votes too where the schema says which value each
turned drawing shows (:meth:`DenseSlotEncoder.set_turn_rotation`: it depends on the voted shape's
symmetry); presence and position are read from the image as drawn. A turned view shows a held-out
combination such as the upside-down pentagon as one that training labelled; the measured gains on
the clutter model are in ``docs/BENCHMARKS.md``. The cost is four forwards of the trunk.

Why this design (measured, ``docs/BENCHMARKS.md``, the clutter model): the schema's position grid
(24 x 24 on the clutter canvas, 576 cells) is too fine for a slot per cell, and slots that attend
over the image would have to learn which object each takes; a centre has exactly one cell of the
feature map because two objects' centres lie at least ``spacing`` grid steps apart (13 pixels on
the clutter canvas, more than a cell's 8), so the assignment of objects to locations is given by
the labels, as in centre-point detectors. Factor vectors are computed only at the locations read
out (and, in training, at the objects' centres): the projection to K x D numbers is the costly
part and most locations hold nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_int
from .encoder import SmallCNN, object_masks

__all__ = ["DenseSlotEncoder"]

STRIDE = 8
FACTOR_HEADS = ("codebook", "tanh")


class DenseSlotEncoder(nn.Module):
    """Per-location object heads on a stride-8 feature map (see the module's docstring).

    ``x_pixels`` / ``y_pixels``: the centre in pixels of every value of the x and y attributes (as the
    data are drawn), which tell the training loss the location of each object. The trunk is the small
    CNN's five stride-2 blocks: the stride-8 map, the stride-16 map upsampled onto it and the global
    average of the last map, with two coordinate channels, go through a 1x1 and a 3x3 convolution to
    ``hidden`` features per location; a linear presence logit and the factor head (below) read them.
    ``forward_with_factors`` returns ``(q, (features [B, L, hidden], presence logits [B, L]))`` (of the
    image as drawn).

    ``turn_votes``: in eval mode, how many quarter turns of the image (1 to 4, the image as drawn
    first) vote on the attributes a turn keeps (:meth:`set_turn_kept`) and on the rotation
    (:meth:`set_turn_rotation`; see the module's notes); 1 reads the image as drawn only. Needs the
    codebook head and a canvas of whole cells.

    ``factor_head="codebook"`` (the default) reads each attribute as logits over its values, trained by
    cross-entropy at the objects' centres; the factor vector is the softmax mixture of the codewords
    in training and, with ``hard`` (the default), the codeword of the most likely value in eval mode,
    so that each object enters the bundle with amplitude ``sigmoid(p_l)`` whatever its uncertainty: a
    soft mixture shrinks an uncertain object's amplitude, and explaining away then miscounts (after
    one epoch of the clutter config, 128 unseen scenes: count right 86.7% hard, 32.8% soft, scenes
    right 29.7% / 23.4%). ``factor_head="tanh"``: ``tanh(W_k z)`` projections to D numbers a factor,
    trained by the model's contrastive factor loss (after one epoch: factors read right at the true
    centres 50.8% against 67.8%, output cosine 0.04 against 0.74)."""

    def __init__(self, dim: int, sizes: Sequence[int], x_pixels: Sequence[float], y_pixels: Sequence[float],
                 image_size: int = 128, width: int = 32, norm: str = "group", silhouette: bool = True,
                 hidden: int = 160, readout: int = 6, denoise_masks: bool = False, factor_head: str = "codebook",
                 hard: bool = True, turn_votes: int = 1) -> None:
        super().__init__()
        self.dim, self.sizes = check_int("dim", dim, 1), tuple(sizes)
        self.readout = check_int("readout", readout, 1)
        image_size = check_int("image_size", image_size, STRIDE * 4)
        self.side = (image_size + STRIDE - 1) // STRIDE
        self.locations = self.side * self.side
        self.silhouette, self.denoise_masks = bool(silhouette), bool(denoise_masks)
        trunk = SmallCNN(image_size=image_size, width=width, blocks=5, features=1, norm=norm,
                         in_channels=5 if self.silhouette else 3)
        self.trunk = trunk.conv  # blocks of (conv, norm, relu): 3 to stride 8, 4 to 16, 5 to 32
        c8, c16, c32 = (min(width * 2 ** b, width * 8) for b in (2, 3, 4))
        ys, xs = torch.meshgrid(torch.arange(self.side), torch.arange(self.side), indexing="ij")
        coords = torch.stack([xs, ys]).float() * (2.0 / max(self.side - 1, 1)) - 1.0
        self.register_buffer("coords", coords[None], persistent=False)          # [1, 2, side, side]
        hidden = check_int("hidden", hidden, 1)
        groups = math.gcd(8, hidden)  # GroupNorm needs groups that divide the channels
        self.mix = nn.Sequential(
            nn.Conv2d(c8 + c16 + c32 + 2, hidden, 1, bias=False), nn.GroupNorm(groups, hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.GroupNorm(groups, hidden), nn.ReLU(inplace=True))
        self.presence = nn.Linear(hidden, 1)
        nn.init.constant_(self.presence.bias, -4.0)  # the prior: a few centres among hundreds of locations
        # the presence loss is a sum over locations per object (not a mean over hundreds of locations, which
        # would weigh the few occupied ones to nothing): MultiVSAModel.loss multiplies its mean by this
        self.presence_scale = self.locations / self.readout
        check_choice("factor_head", factor_head, FACTOR_HEADS)
        self.factor_head, self.hard = factor_head, bool(hard)
        if factor_head == "tanh":
            self.factor = nn.Linear(hidden, len(self.sizes) * self.dim)
        else:
            self.logits = nn.Linear(hidden, sum(self.sizes))
        self._codebooks: list[str] = []
        self.register_buffer("x_cell", torch.as_tensor(x_pixels, dtype=torch.float64).div(STRIDE).floor().long()
                             .clamp(0, self.side - 1), persistent=False)
        self.register_buffer("y_cell", torch.as_tensor(y_pixels, dtype=torch.float64).div(STRIDE).floor().long()
                             .clamp(0, self.side - 1), persistent=False)
        self.kx, self.ky = None, None
        self.image_size = image_size
        self.turn_kept: tuple[int, ...] = ()
        self.turn_rotation: tuple[int, int] | None = None
        self.set_turn_votes(turn_votes)

    def set_turn_votes(self, views: int) -> None:
        """How many quarter turns of the image vote in eval mode (1 to 4; see the class notes)."""
        views = check_int("turn_votes", views, 1, 4)
        if views > 1 and (self.factor_head != "codebook" or self.side * STRIDE != self.image_size):
            raise ValueError(f"turn_votes: {views} needs the codebook head (factor_head='codebook') and an image "
                             f"size that is a multiple of {STRIDE} (the feature map turns with the image); got "
                             f"factor_head={self.factor_head!r}, image_size={self.image_size}")
        self.turn_votes = views

    def set_turn_kept(self, factors: Sequence[int]) -> None:
        """Which attributes keep their value when the image is turned by a quarter turn (those the turn
        votes read): every attribute but the position and the rotation, for the built-in renderer."""
        bad = [k for k in factors if not 0 <= int(k) < len(self.sizes)]
        if bad:
            raise ValueError(f"turn-kept attributes {bad}: not attributes of {len(self.sizes)}")
        self.turn_kept = tuple(sorted({int(k) for k in factors}))

    def set_turn_rotation(self, rotation: int, shape: int, table: Tensor) -> None:
        """Let the views vote on the rotation too: ``table[s, t, j]`` is the rotation value that the image
        turned by ``t`` quarter turns shows for an object of shape ``s`` and rotation ``j`` (-1: none, as
        for a turn that is no whole number of the values' steps), so each view's rotation logits are
        read back onto the drawn image's values once the object's shape is voted."""
        K = len(self.sizes)
        if not (0 <= rotation < K and 0 <= shape < K):
            raise ValueError(f"turn rotation table: attributes {rotation} (rotation) and {shape} (shape) are not "
                             f"attributes of {K}")
        table = torch.as_tensor(table, dtype=torch.long)
        want = (self.sizes[shape], 4, self.sizes[rotation])
        if rotation == shape or tuple(table.shape) != want or bool((table < -1).any()) \
                or bool((table >= self.sizes[rotation]).any()) or bool((table[:, 0] != torch.arange(want[2])).any()):
            raise ValueError(f"turn rotation table: shape {want} of rotation values (-1 none) expected, the "
                             f"image as drawn showing each value as itself; got {tuple(table.shape)}")
        self.turn_rotation = (int(rotation), int(shape))
        self.register_buffer("turn_table", table, persistent=False)

    def set_position_factors(self, kx: int, ky: int) -> None:
        """Which attributes are x and y (their value indices locate an object's centre)."""
        self.kx, self.ky = kx, ky

    def _input(self, x: Tensor) -> Tensor:
        if self.silhouette:
            x = torch.cat([x, *object_masks(x, denoise=self.denoise_masks)], 1)
        return (x - 0.5) * 4.0

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(per-location features ``[B, L, hidden]``, presence logits ``[B, L]``)."""
        t = self.trunk
        f8 = t[:9](self._input(x))
        f16 = t[9:12](f8)
        f32 = t[12:](f16)
        B = x.shape[0]
        up = F.interpolate(f16, size=f8.shape[-2:], mode="nearest")
        glob = f32.mean((-2, -1), keepdim=True).expand(-1, -1, *f8.shape[-2:])
        h = self.mix(torch.cat([f8, up, glob, self.coords.to(f8.dtype).expand(B, -1, -1, -1)], 1))
        z = h.flatten(2).transpose(1, 2)                                                   # [B, L, hidden]
        return z, self.presence(z).squeeze(-1)

    def set_codebooks(self, codebooks: Sequence[Tensor]) -> None:
        """The attributes' codebooks ``[n_k, D]`` (kept as buffers, not saved: the model owns them), which
        the codebook head's factor vectors are mixtures of."""
        if [int(c.shape[0]) for c in codebooks] != list(self.sizes) or any(c.shape[1] != self.dim for c in codebooks):
            raise ValueError(f"dense encoder: codebooks of sizes {list(self.sizes)} and dimension {self.dim} expected, "
                             f"got {[tuple(c.shape) for c in codebooks]}")
        self._codebooks = []
        for k, c in enumerate(codebooks):
            self.register_buffer(f"codebook_{k}", c.detach().float(), persistent=False)  # shares the model's
            self._codebooks.append(f"codebook_{k}")

    def factor_logits(self, z: Tensor) -> list[Tensor]:
        """The codebook head's logits over each attribute's values, ``[..., n_k]`` each."""
        return list(self.logits(z).split(list(self.sizes), dim=-1))

    def factors(self, z: Tensor) -> Tensor:
        """The factor vectors ``[..., K, D]`` of location features ``[..., hidden]``: ``tanh(W_k z)``, or
        (the codebook head) each attribute's codewords weighted by the softmax of its logits."""
        if self.factor_head == "tanh":
            return torch.tanh(self.factor(z)).unflatten(-1, (len(self.sizes), self.dim))
        return self._codebook_factors(self.factor_logits(z))

    def _codebook_factors(self, logits: Sequence[Tensor]) -> Tensor:
        if not self._codebooks:
            raise ValueError("dense encoder: the codebook head needs set_codebooks first")
        if self.hard and not self.training:  # the codeword of the most likely value (see the class notes)
            return torch.stack([getattr(self, name).to(lk.dtype)[lk.argmax(-1)]
                                for lk, name in zip(logits, self._codebooks)], dim=-2)
        return torch.stack([torch.softmax(lk, dim=-1) @ getattr(self, name).to(lk.dtype)
                            for lk, name in zip(logits, self._codebooks)], dim=-2)

    def slot_loss(self, aux: Any, rows: Tensor, slots: Tensor, labels: Tensor,
                  ignore: Tensor | None = None) -> Tensor | None:
        """The codebook head's classification loss at the objects' locations (mean cross-entropy over
        the attributes; ``ignore`` ``[N, K]`` bool: labels left out); None for the tanh head, which the
        model's contrastive factor loss trains."""
        if self.factor_head == "tanh":
            return None
        z = aux[0][rows, slots]
        keep = torch.ones_like(labels, dtype=torch.bool) if ignore is None else ~ignore
        terms = [(F.cross_entropy(lk, labels[:, k], reduction="none") * keep[:, k]).sum()
                 / keep[:, k].sum().clamp_min(1) for k, lk in enumerate(self.factor_logits(z))]
        return sum(terms) / len(self.sizes)

    def slots_of(self, labels: Tensor) -> Tensor:
        """The feature-map location of every object's centre ``[...]`` from its labels ``[..., K]``."""
        if self.kx is None or self.ky is None:
            raise ValueError("dense encoder: set_position_factors was not called (which attributes are x and y)")
        return self.y_cell[labels[..., self.ky]] * self.side + self.x_cell[labels[..., self.kx]]

    def slot_factors(self, aux: Any, rows: Tensor, slots: Tensor) -> Tensor:
        """The factor vectors ``[N, K, D]`` at locations ``slots`` of images ``rows``."""
        z, _ = aux
        return self.factors(z[rows, slots])

    def readout_locations(self, presence: Tensor) -> Tensor:
        """The ``readout`` locations of highest presence ``[B, R]``."""
        return presence.topk(min(self.readout, presence.shape[-1]), dim=-1).indices

    def forward_with_factors(self, x: Tensor) -> tuple[Tensor, Any]:
        if self.turn_votes > 1 and not self.training and self.turn_kept:
            return self._voted(x)
        z, p = self.features(x)
        loc = self.readout_locations(p)
        zs = torch.gather(z, 1, loc[..., None].expand(-1, -1, z.shape[-1]))             # [B, R, hidden]
        gate = torch.sigmoid(torch.gather(p, 1, loc))
        q = (gate[..., None] * self.factors(zs).prod(dim=-2)).sum(dim=-2)
        return q, (z, p)

    def _voted(self, x: Tensor) -> tuple[Tensor, Any]:
        """``forward_with_factors`` with turn votes: the views in one batch of ``T * B`` images, each
        view's maps turned back onto the drawn image's locations (``torch.rot90`` of the image and of
        its map agree because the canvas is a whole number of cells)."""
        T, B, S = self.turn_votes, x.shape[0], self.side
        z, p = self.features(torch.cat([torch.rot90(x, t, dims=(-2, -1)) for t in range(T)]))
        H = z.shape[-1]
        z = torch.stack([torch.rot90(m, -t, dims=(1, 2)) for t, m in enumerate(z.view(T, B, S, S, H))])
        z = z.view(T, B, S * S, H)
        loc = self.readout_locations(p[:B])                                                # the drawn view's
        zs = torch.gather(z, 2, loc[None, ..., None].expand(T, -1, -1, H))                # [T, B, R, hidden]
        views = self.factor_logits(zs)
        logits = [torch.log_softmax(lk, dim=-1).mean(0) if k in self.turn_kept else lk[0]
                  for k, lk in enumerate(views)]
        if self.turn_rotation is not None:
            kr, ks = self.turn_rotation
            logits[kr] = self._voted_rotation(views[kr], logits[ks].argmax(-1))
        gate = torch.sigmoid(torch.gather(p[:B], 1, loc))
        q = (gate[..., None] * self._codebook_factors(logits).prod(dim=-2)).sum(dim=-2)
        return q, (z[0], p[:B])

    def _voted_rotation(self, views: Tensor, shape: Tensor) -> Tensor:
        """The rotation's mean log-probability ``[B, R, n]`` over the views ``[T, B, R, n]`` whose turn maps
        every value of the object's (voted) shape ``[B, R]`` onto one, each read back onto the drawn values."""
        T = views.shape[0]
        idx = self.turn_table[shape][..., :T, :].movedim(-2, 0)                           # [T, B, R, n]
        ok = (idx >= 0).all(-1, keepdim=True)                                             # [T, B, R, 1]
        read = torch.log_softmax(views, dim=-1).gather(-1, idx.clamp_min(0))
        return (read * ok).sum(0) / ok.sum(0)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_factors(x)[0]
