"""Image encoders that end in one D-dimensional vector: a small CNN (fast on CPU) and a ResNet-18
adapted to small images, each with a plain linear head or a factorised binding head.

The factorised head computes K per-factor vectors ``tanh(W_k h)`` and binds them elementwise, so
the output is still one bound vector; the decomposer head reads only that vector. The binding is
built into the head: a linear head has to learn the elementwise product of K codewords as one
regression target, which changes completely when any one factor changes, while each factorised
projection only has to learn its own factor. (Measurements: ``docs/BENCHMARKS.md``.)

An attribute may instead be read by a reader of its own (:class:`AttributeReader`, ``readers=``): a
small translation-invariant CNN that sees only that attribute's labels, whose factor vector is the
softmax mixture of the attribute's codewords. A shared backbone learns the attributes together and
reads one of them per value of another (a turn learned per shape); a reader of its own does not, and
reads combinations never trained on (measured in ``docs/BENCHMARKS.md``). In training, the readers
of attributes a turn does not change may see the picture turned (``reader_turn``), so that a shape or
a size is read the same at a turn never seen with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_int
from .decoders import (
    ImageDecoder,  # noqa: F401  (its first home; vsa_vision.decoders holds every decoder)
    off_background,
)


def to_float_images(images: Tensor) -> Tensor:
    """``uint8 [B, 3, H, W]`` (0..255) or floating images already in [0, 1] -> float32 in [0, 1]."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images: expected a tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected shape [B, 3, H, W], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"images: expected uint8 or floating point, got {images.dtype}")
    return images.float()


BACKBONES = ("small_cnn", "resnet18")
HEADS = ("factorised", "linear")
NORMS = ("group", "batch")


def _median3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _denoised_brightness(images: Tensor) -> Tensor:
    """The brightest channel ``[B, 1, H, W]``, denoised without losing thin lines: the largest of the
    four directional 3-pixel medians (along rows, columns and both diagonals: a one-pixel outline
    survives along its own direction, an isolated speck along none), then a Gaussian blur of sigma
    0.7 px (a 5 x 5 kernel)."""
    mx = images.amax(1, keepdim=True)
    p = F.pad(mx, (1, 1, 1, 1), mode="replicate")
    c = p[..., 1:-1, 1:-1]
    rows = _median3(p[..., 1:-1, :-2], c, p[..., 1:-1, 2:])
    cols = _median3(p[..., :-2, 1:-1], c, p[..., 2:, 1:-1])
    diag = _median3(p[..., :-2, :-2], c, p[..., 2:, 2:])
    anti = _median3(p[..., :-2, 2:], c, p[..., 2:, :-2])
    return gaussian_blur5(torch.maximum(torch.maximum(rows, cols), torch.maximum(diag, anti)), 0.7)


def gaussian_blur5(x: Tensor, sigma: float) -> Tensor:
    """Each channel of float images ``[B, C, H, W]`` blurred by a separable 5-tap Gaussian of
    ``sigma`` pixels (normalised; edges replicated)."""
    t = torch.arange(-2, 3, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    # five shifted slices a pass: a sixth of the time of a grouped (depthwise) convolution on the CPU
    # (256 images of 3 x 64 x 64: 16 against 101 ms), the same sums up to rounding
    for dim, pad in ((-1, (2, 2, 0, 0)), (-2, (0, 0, 2, 2))):  # along rows, then along columns
        n, p = x.shape[dim], F.pad(x, pad, mode="replicate")
        x = p.narrow(dim, 0, n) * k[0]
        for i in range(1, 5):
            x = x + p.narrow(dim, i, n) * k[i]
    return x


def _adaptive_threshold(mx: Tensor) -> Tensor:
    """Per image ``[B, 1, 1, 1]``: 0.3 of its brightest (99.5th percentile) denoised value, within
    [0.1, 0.25]: high above pixel noise next to bright objects, low enough for darkened ones."""
    top = torch.quantile(mx.flatten(1).float(), 0.995, dim=1).to(mx.dtype)
    return (0.3 * top).clamp(0.1, 0.25)[:, None, None, None]


def object_masks(images: Tensor, threshold: float = 0.1, denoise: bool = False) -> tuple[Tensor, Tensor]:
    """``(silhouette, holes)``, each ``float [B, 1, H, W]`` in {0, 1}, of objects on a dark background.

    ``denoise=True`` thresholds the brightest channel after a line-preserving denoise
    (:func:`_denoised_brightness`) at a threshold of its own (:func:`_adaptive_threshold`; ``threshold``
    is then unused), so that pixel noise, salt and pepper and JPEG artefacts do not turn the
    background into foreground specks while one-pixel outlines, and with them the holes of outlined
    shapes, survive: at noise of standard deviation 15 / 255 the plain masks differ from the clean
    image's in 12% of pixels, the denoised ones in under 1% (``docs/BENCHMARKS.md``, robustness).

    A pixel is foreground when its brightest channel exceeds ``threshold``; the exterior is the
    background reachable from the image border through 4-connected background pixels (a batched
    flood fill by repeated one-pixel growth). The silhouette is everything but the exterior, the
    holes the background pixels inside it. An outlined shape and the same shape filled have the same
    silhouette, and only the outlined one has holes: shape and fill each get a view that does not
    depend on the other (``Encoder(silhouette=True)``)."""
    if denoise:
        mx = _denoised_brightness(images)
        fg = mx > _adaptive_threshold(mx)
    else:
        fg = images.amax(1, keepdim=True) > threshold
    if images.device.type == "cpu":
        return _object_masks_cpu(fg, images.dtype)
    return _object_masks_flood(fg, images.dtype)


def _object_masks_flood(fg: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:func:`object_masks` by a batched flood fill on any device."""
    bg = ~fg
    ext = torch.zeros_like(fg)
    ext[..., 0, :] = True
    ext[..., -1, :] = True
    ext[..., :, 0] = True
    ext[..., :, -1] = True
    ext &= bg
    h, w = fg.shape[-2:]
    for i in range(h * w):  # converges long before: checked every 8 growth steps
        p = F.pad(ext, (1, 1, 1, 1))
        grown = ext | ((p[..., 1:-1, :-2] | p[..., 1:-1, 2:] | p[..., :-2, 1:-1] | p[..., 2:, 1:-1]) & bg)
        if i % 8 == 7 and torch.equal(grown, ext):
            break
        ext = grown
    return (~ext).to(dtype), (bg & ~ext).to(dtype)


def _object_masks_cpu(fg: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:func:`object_masks` on the CPU by SciPy's hole filling, the same masks as the flood fill (the
    background's 4-connected components that do not touch the border are the holes), many times
    faster: the batch is one 3-D array whose images do not connect to each other, padded on both
    sides of the batch axis with all-foreground images so that only the image borders are borders."""
    from scipy.ndimage import binary_fill_holes

    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connected within an image, never across images
    f = fg[:, 0].numpy()
    padded = np.ones((f.shape[0] + 2, *f.shape[1:]), dtype=bool)
    padded[1:-1] = f
    filled = torch.from_numpy(binary_fill_holes(padded, structure=cross)[1:-1])[:, None]
    return filled.to(dtype), (filled & ~fg).to(dtype)


def silhouette(images: Tensor, threshold: float = 0.1) -> Tensor:
    """The filled silhouette of the objects (see :func:`object_masks`): ``float [B, 1, H, W]``."""
    return object_masks(images, threshold)[0]


class SmallCNN(nn.Module):
    """``blocks`` stride-2 3x3 conv + norm + ReLU blocks, flattened (position stays in the
    features), then a linear layer to ``features``. About 1.24 M parameters at the defaults.

    ``norm="group"`` (GroupNorm, 8 groups; the default) or ``"batch"``. GroupNorm has no train/eval
    difference; with BatchNorm the running statistics can lag the fast-moving weights, and the K-fold
    product of the head amplifies the mismatch in eval mode (measured in ``docs/BENCHMARKS.md``)."""

    def __init__(self, image_size: int = 64, width: int = 32, blocks: int = 5, features: int = 256,
                 in_channels: int = 3, norm: str = "group") -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        layers, c = [], in_channels
        for b in range(blocks):
            out = min(width * 2 ** b, width * 8)
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False),
                       nn.GroupNorm(min(8, out), out) if norm == "group" else nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            c = out
        self.conv = nn.Sequential(*layers)
        side = image_size
        for _ in range(blocks):
            side = (side + 1) // 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, features), nn.ReLU(inplace=True))
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class ResNet18Small(nn.Module):
    """torchvision's ResNet-18 (``weights=None``: nothing is downloaded) for small images: a 3x3
    stride-1 stem without max-pooling, global average pooling, 512 features."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.features = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LinearHead(nn.Module):
    """One linear layer to ``dim``."""

    def __init__(self, features: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(features, dim)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h)


class FactorisedHead(nn.Module):
    """K projections ``tanh(W_k h)`` bound elementwise into one vector of ``dim``.

    ``factors(h)`` returns the K vectors themselves, for reference measurements only."""

    def __init__(self, features: int, dim: int, num_factors: int) -> None:
        super().__init__()
        self.num_factors, self.dim = num_factors, dim
        self.proj = nn.Linear(features, num_factors * dim)

    def factors(self, h: Tensor) -> Tensor:
        return torch.tanh(self.proj(h)).unflatten(-1, (self.num_factors, self.dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.factors(h).prod(dim=-2)


class AttributeReader(nn.Module):
    """One attribute read by a network of its own: four stride-2 3x3 conv blocks (16, 32, 64, 64
    channels), global max pooling (where the object is does not matter), a linear layer to the
    logits of the attribute's values; the factor vector is their softmax mixture of the attribute's
    codewords (``codebook`` ``[n, D]``, a buffer), so a sure reading is the codeword itself.

    ``colour_blind``: the reader sees the brightness of the picture (the largest of its three colour
    channels, with any further input channels) instead of its colours, so it cannot learn that a
    colour rules a value out: for an attribute a colour does not change (a shape, a size, a turn).
    ``pad``: pixels of the picture's own edge repeated around it first, so that an object at the edge
    is seen as one inside (the convolutions' zero padding stays away from it)."""

    def __init__(self, codebook: Tensor, in_channels: int = 3, widths: tuple[int, ...] = (16, 32, 64, 64),
                 norm: str = "group", colour_blind: bool = False, pad: int = 0) -> None:
        super().__init__()
        self.colour_blind, self.pad = bool(colour_blind), check_int("reader_pad", pad, 0)
        layers, c = [], in_channels - 2 if self.colour_blind else in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False),
                       nn.GroupNorm(min(8, w), w) if norm == "group" else nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.net = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, codebook.shape[0]))
        self.register_buffer("codebook", codebook.detach().clone().float())

    def logits(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        if self.colour_blind:
            x = torch.cat([x[:, :3].amax(1, keepdim=True), x[:, 3:]], 1)
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(x).softmax(-1) @ self.codebook


#: attribute names that say where the object is (read ``auto`` leaves them to the head, whose
#: features keep the position: a reader's global pooling does not)
POSITION_NAMES = re.compile(r"^(x|y|z|row|col|column|left|top|cx|cy|[xyz]_?pos(ition)?|[a-z]*_(x|y|pos|position)|"
                            r"(pos|position)(_[a-z]+)?)$", re.IGNORECASE)


def _chosen(option: str, value: str | Sequence[str] | None, among: Sequence[str], left_out: Sequence[str],
            named_like: re.Pattern) -> list[str]:
    """The names an option like ``readers`` chooses: None none, a list as given, ``"auto"`` every one of
    ``among`` but those in ``left_out`` and those ``named_like`` matches."""
    if value is None:
        return []
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{option}: expected 'auto' or a list of attribute names, got {value!r}")
        return [n for n in among if n not in set(left_out) and not named_like.match(n)]
    return list(value)


def reader_names(names: Sequence[str], readers: str | Sequence[str] | None,
                 positions: Sequence[str] = ()) -> list[str]:
    """The attributes ``readers`` names: a list as given, or ``"auto"``: every attribute but the
    positions (those in ``positions``, e.g. the roles ``x`` and ``y``, and those named like one:
    :data:`POSITION_NAMES`)."""
    return _chosen("readers", readers, names, positions, POSITION_NAMES)


#: attribute names that are a colour (``colour_blind="auto"`` leaves their readers the colours)
COLOUR_NAMES = re.compile(r"^([a-z]*_)?(colou?rs?|hue|tint|tone|shade)(_[a-z]+)?$", re.IGNORECASE)


def colour_blind_names(read: Sequence[str], colour_blind: str | Sequence[str] | None,
                       colours: Sequence[str] = ()) -> list[str]:
    """Of the attributes read by readers (``read``), those whose readers see brightness only: a list
    as given, or ``"auto"``: every one but the colours (those in ``colours``, e.g. the role ``colour``,
    and those named like one: :data:`COLOUR_NAMES`)."""
    chosen = _chosen("colour_blind", colour_blind, read, colours, COLOUR_NAMES)
    for name in chosen:
        if name not in read:
            raise ValueError(f"colour_blind: {name!r} is not read by a reader of its own; readers: {list(read)}")
    return chosen


#: attribute names that are a turn (``reader_turn`` leaves their readers the pictures as drawn)
TURN_NAMES = re.compile(r"^([a-z]*_)?(angle|rotation|orientation|turn|heading|spin|yaw|tilt)s?(_[a-z]+)?$",
                        re.IGNORECASE)


def content_centres(x: Tensor) -> Tensor:
    """``[B, 2]``: where each picture's content lies, in ``affine_grid``'s coordinates (-1..1, x then y):
    the mean position of its pixels weighted by how far each is from the picture's median colour
    (the first three channels); the picture's centre where it is all one colour."""
    w = off_background(x[:, :3].float())  # [B, H, W]
    H, W = w.shape[-2:]
    ys = (torch.arange(H, device=x.device, dtype=w.dtype) * 2 + 1) / H - 1
    xs = (torch.arange(W, device=x.device, dtype=w.dtype) * 2 + 1) / W - 1
    mass = w.sum((1, 2))
    c = torch.stack([(w.sum(1) * xs).sum(1), (w.sum(2) * ys).sum(1)], 1) / mass.clamp_min(1e-12)[:, None]
    return torch.where(mass[:, None] > 1e-6, c, torch.zeros_like(c))


def turned_pictures(x: Tensor, degrees: Tensor | float) -> Tensor:
    """``x`` ``[B, C, H, W]``, each picture turned about where its content lies (:func:`content_centres`,
    so an object near the edge stays in the picture) by its own angle, anticlockwise as drawn:
    ``degrees`` ``[B]``, or a number: angles drawn uniformly within ``+- degrees``. Bilinear, the
    picture's edge repeated where the turn brings in what lay outside it."""
    if not torch.is_tensor(degrees):
        degrees = (torch.rand(x.shape[0]) * 2 - 1) * float(degrees)
    a = degrees.to(x.device, torch.float32) * (np.pi / 180.0)
    c, s = a.cos(), a.sin()
    H, W = x.shape[-2:]
    # output point p samples the input at R p + (o - R o), o the content's centre; R in pixel units,
    # so on a canvas that is not square the turn is still a turn
    r = torch.stack([torch.stack([c, -s * H / W], -1), torch.stack([s * W / H, c], -1)], 1)  # [B, 2, 2]
    o = content_centres(x).to(r.dtype)
    theta = torch.cat([r, (o - (r @ o[:, :, None])[..., 0])[:, :, None]], 2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def reader_codebooks(names: tuple[str, ...], codebooks: tuple[Tensor, ...], readers,
                     positions: Sequence[str] = ()) -> dict[int, Tensor]:
    """``{factor index: codebook}`` of the attributes ``readers`` names (:func:`reader_names`), with a
    clear error for a name that is not an attribute."""
    out = {}
    for name in reader_names(names, readers, positions):
        if name not in names:
            raise ValueError(f"readers: {name!r} is not an attribute of the schema; attributes: {list(names)}")
        out[names.index(name)] = codebooks[names.index(name)]
    return out


class Encoder(nn.Module):
    """Backbone + head: images ``float [B, 3, H, W]`` in [0, 1] to vectors ``[B, dim]``.

    ``silhouette=True`` adds two input channels computed inside ``forward`` from the image itself
    (:func:`object_masks`): the objects' filled silhouette and the holes inside it; ``denoise_masks``
    computes them from a denoised image (robust to pixel noise, for encoders trained on degraded images).
    ``readers`` ``{factor index: codebook [n, D]}``: the factors read by an :class:`AttributeReader`
    each instead of the head (which needs the factorised head); ``colour_blind``: the factors of those
    whose reader sees brightness only; ``reader_pad``: the readers' edge padding (:class:`AttributeReader`);
    ``turned``: the factors whose readers see, in training only, half the pictures turned by a random
    angle within ``+- reader_turn`` degrees (:func:`turned_pictures`; the attributes a turn does not change)."""

    def __init__(self, dim: int = 1024, num_factors: int = 6, backbone: str = "small_cnn", head: str = "factorised",
                 image_size: int = 64, width: int = 32, features: int = 256, norm: str = "group",
                 silhouette: bool = False, denoise_masks: bool = False,
                 readers: dict[int, Tensor] | None = None, colour_blind: Sequence[int] = (),
                 reader_pad: int = 0, turned: Sequence[int] = (), reader_turn: float = 0.0) -> None:
        super().__init__()
        check_choice("backbone", backbone, BACKBONES)
        check_choice("head", head, HEADS)
        dim, num_factors = check_int("dim", dim, 1), check_int("num_factors", num_factors, 1)
        width, features = check_int("width", width, 1), check_int("features", features, 1)
        self.silhouette, self.denoise_masks = bool(silhouette), bool(denoise_masks)
        c = 5 if self.silhouette else 3
        self.backbone = (SmallCNN(image_size=image_size, width=width, features=features, norm=norm, in_channels=c)
                         if backbone == "small_cnn" else ResNet18Small(in_channels=c))
        f = self.backbone.features
        self.head = FactorisedHead(f, dim, num_factors) if head == "factorised" else LinearHead(f, dim)
        self.dim = dim
        readers = dict(readers or {})
        if readers and head != "factorised":
            raise ValueError("readers: an attribute read by a reader of its own replaces one factor of the "
                             f"factorised head; head={head!r} has no factors")
        for k, C in readers.items():
            if not 0 <= k < num_factors or C.shape[-1] != dim:
                raise ValueError(f"readers: factor {k} with a codebook of shape {tuple(C.shape)} does not fit "
                                 f"{num_factors} factors of dimension {dim}")
        self.readers = nn.ModuleDict({str(k): AttributeReader(C, c, norm=norm, colour_blind=k in set(colour_blind),
                                                              pad=reader_pad) for k, C in sorted(readers.items())})
        if not 0.0 <= reader_turn <= 180.0:
            raise ValueError(f"reader_turn: expected degrees in [0, 180], got {reader_turn}")
        self.turned = tuple(sorted(int(k) for k in turned)) if reader_turn else ()
        for k in self.turned:
            if str(k) not in self.readers:
                raise ValueError(f"turned: factor {k} is not read by a reader of its own")
        self.reader_turn = float(reader_turn)

    def _input(self, x: Tensor) -> Tensor:
        if self.silhouette:
            x = torch.cat([x, *object_masks(x, denoise=self.denoise_masks)], 1)
        return (x - 0.5) * 4.0

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_factors(x)[0]

    def forward_with_factors(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(output ``[B, dim]``, the factorised head's K vectors ``[B, K, dim]`` or None for a linear head).

        The factor vectors are for training losses and reference measurements only; the output is
        what a decomposer head decodes."""
        x = self._input(x)
        h = self.backbone(x)
        if isinstance(self.head, FactorisedHead):
            f = self.head.factors(h)
            if len(self.readers):
                xt = x
                if self.training and self.turned:  # half the pictures turned, half as drawn
                    n = x.shape[0]
                    xt = turned_pictures(x, (torch.rand(n) * 2 - 1) * self.reader_turn * (torch.rand(n) < 0.5))
                own = {int(k): r(xt if int(k) in self.turned else x) for k, r in self.readers.items()}
                f = torch.stack([own[k] if k in own else f[:, k] for k in range(f.shape[1])], 1)
            return f.prod(dim=-2), f
        return self.head(h), None


def reader_arguments(schema, cb, readers, colour_blind, pad: int = 0, turn: float = 0.0) -> dict[str, Any]:
    """The :class:`Encoder`'s ``readers``, ``colour_blind`` and ``turned`` arguments from a model's
    (names or ``"auto"``; ``turn`` degrees: every reader but a turn's, by role or :data:`TURN_NAMES`;
    none where no attribute is a turn), for ``schema`` (its roles name positions, colours and turns)
    and codebooks ``cb``."""
    roles = {a.name: a.role for a in schema.attributes}
    codebooks = reader_codebooks(cb.names, cb.tensors, readers, [n for n, r in roles.items() if r in ("x", "y")])
    read = [cb.names[k] for k in sorted(codebooks)]
    blind = colour_blind_names(read, colour_blind, [n for n, r in roles.items() if r == "colour"])
    turns = {n for n, r in roles.items() if r == "rotation" or TURN_NAMES.match(n)}
    # no attribute a turn: the objects were never shown turned, and a label may hang on how they stand
    # (an arrow up or down), so no reader is shown a turn
    turned = [cb.names.index(n) for n in read if n not in turns] if turns else []
    return {"readers": codebooks, "colour_blind": [cb.names.index(n) for n in blind], "reader_pad": pad,
            "turned": turned, "reader_turn": float(turn)}
