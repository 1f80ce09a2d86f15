"""The public entry point for a trained model: images in, attribute labels out.

    >>> from vsa_vision import Pipeline
    >>> pipe = Pipeline.from_checkpoint()          # the shipped checkpoint; or a path
    >>> recs = pipe.recognize(images)              # PIL images, or a [B, 3, H, W] tensor
    >>> recs[0].labels, recs[0].confidence         # {attribute: value}, {attribute: float}

Input policy: any image Pillow reads is converted to RGB (transparent pixels are composited onto
the black background the scenes are drawn on); an image of another size is padded with black to a
square, centred, then resized to the model's input size (box filter when shrinking, bilinear when
enlarging), so shapes keep their aspect ratio. Tensors: ``uint8`` 0..255 or floats in [0, 1],
``[B, 3, H, W]`` or one ``[3, H, W]``; other sizes are resized with antialiasing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .checkpoint import load_model
from .decompose import Decomposition
from .edit import parse_changes, swap
from .model import VSAModel
from .scenes.schema import Schema
from .vsa import Codebooks


@dataclass
class Recognition:
    """What one image holds: ``labels`` {attribute: value}, ``confidence`` {attribute: float in [0, 1]}
    (the cosine of the factor's unbinding estimate to the chosen codeword), ``indices`` (value
    indices in schema order) and ``similarity`` (cosine of the encoder's vector to the bound answer)."""

    labels: dict[str, str]
    confidence: dict[str, float]
    indices: list[int]
    similarity: float


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    rgba = img.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("RGB")


def prepare_image(img: Image.Image, side: int) -> np.ndarray:
    """One PIL image -> ``uint8 [side, side, 3]`` by the module's input policy."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(img).__name__}")
    img = _to_rgb(img)
    w, h = img.size
    if w != h:
        sq = max(w, h)
        canvas = Image.new("RGB", (sq, sq), (0, 0, 0))
        canvas.paste(img, ((sq - w) // 2, (sq - h) // 2))
        img = canvas
    if img.size != (side, side):
        resample = Image.Resampling.BOX if img.width > side else Image.Resampling.BILINEAR
        img = img.resize((side, side), resample)
    return np.array(img, dtype=np.uint8)


def prepare_tensor(images: Tensor, side: int) -> Tensor:
    """A tensor ``[B, 3, H, W]`` or ``[3, H, W]`` -> ``[B, 3, side, side]``: unchanged at that size,
    else resized (bilinear with antialiasing) to floats in [0, 1]."""
    x = images[None] if images.ndim == 3 else images
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images: expected a tensor [B, 3, H, W] or [3, H, W], got {tuple(images.shape)}")
    if x.shape[-2:] != (side, side):
        xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = F.interpolate(xf, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(0, 1)
    return x


@dataclass
class Edit:
    """The result of :meth:`Pipeline.edit`: the decoded attributes of the edited vector (``labels``,
    ``confidence``), the scene they describe rendered (``image``), what the input was recognised as
    (``before``), the edited vector and the changes asked for."""

    labels: dict[str, str]
    confidence: dict[str, float]
    image: Image.Image
    before: Recognition
    vector: Tensor
    changes: dict[str, Any]


class Pipeline:
    """A trained encoder with its codebooks and a decomposer head, on one device."""

    def __init__(self, model: VSAModel, method: str | None = None, device: str | torch.device | None = None) -> None:
        if not isinstance(model, VSAModel):
            raise TypeError(f"model: expected a VSAModel, got {type(model).__name__}")
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.method = method or model.hparams.method

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        method: str | None = None) -> Pipeline:
        """Load a ``.ckpt`` or ``.safetensors`` checkpoint (default: the shipped one)."""
        return cls(load_model(path, map_location=device), method=method)

    @property
    def schema(self) -> Schema:
        return self.model.schema

    @property
    def codebooks(self) -> Codebooks:
        return self.model.codebooks

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.schema.image_size

    def to(self, device: str | torch.device) -> Pipeline:
        self.model.to(device)
        return self

    def preprocess(self, images: Any) -> Tensor:
        """Images by the module's input policy -> ``uint8 [B, 3, S, S]`` (or float for float tensors)."""
        side = self.image_size
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, Tensor):
            return prepare_tensor(images, side)
        if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
            if not images:
                raise ValueError("images: empty list")
            arr = np.stack([prepare_image(im, side) for im in images])
            return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
        raise TypeError(f"images: expected PIL images or a tensor, got {type(images).__name__}")

    @torch.inference_mode()
    def encode(self, images: Any, batch_size: int = 256) -> Tensor:
        """The encoder's vectors ``[B, D]``, computed in batches on the pipeline's device."""
        x = self.preprocess(images)
        out = [self.model(x[i:i + batch_size].to(self.device)) for i in range(0, len(x), batch_size)]
        return torch.cat(out)

    @torch.inference_mode()
    def decode(self, vectors: Tensor, method: str | None = None) -> Decomposition:
        """Decompose vectors ``[B, D]`` with the head ``method`` (default: the pipeline's)."""
        return self.model.decode(vectors.to(self.device), method or self.method)

    def recognize(self, images: Any, method: str | None = None, batch_size: int = 256) -> list[Recognition]:
        """Attribute labels with per-factor confidence for every image, batched."""
        recs: list[Recognition] = []
        x = self.preprocess(images)
        for i in range(0, len(x), batch_size):
            res = self.decode(self.encode(x[i:i + batch_size], batch_size=batch_size), method)
            recs.extend(self._records(res))
        return recs

    # -- editing ------------------------------------------------------------------------------------

    def swap(self, vector: Tensor, factor: str | Mapping[str, Any], new_value: Any = None, old_value: Any = None,
             method: str | None = None) -> Tensor:
        """``vector * c_old * c_new``: set ``factor`` to ``new_value`` in a bound vector ``[D]`` / ``[B, D]``.

        ``factor`` may instead be a mapping ``{attribute: new value}`` for several swaps at once.
        ``old_value`` (a label, or a mapping of labels for several) states the current value; by
        default it is decoded from the vector with ``method``."""
        changes = dict(factor) if isinstance(factor, Mapping) else {factor: new_value}
        if not isinstance(factor, Mapping) and new_value is None:
            raise ValueError("swap: new_value is required when factor is a name")
        v = vector.to(self.device)
        if old_value is None:
            current = self.decode(v if v.ndim == 2 else v[None], method).indices
            current = current if v.ndim == 2 else current[0]
        else:
            current = self._stated_values(changes, old_value)
        return swap(v, self.codebooks, changes, current)

    def _stated_values(self, changes: Mapping[str, Any], old_value: Any) -> Tensor:
        """Value indices ``[K]`` holding the stated current value of every changed factor (the
        others, which a swap does not read, are 0)."""
        cb = self.codebooks
        olds = dict(old_value) if isinstance(old_value, Mapping) else {next(iter(changes)): old_value}
        now = parse_changes(cb, olds)
        current = torch.zeros(cb.num_factors, dtype=torch.long, device=self.device)
        missing = [n for n in changes if cb.names.index(n) not in now]
        if missing:
            raise ValueError(f"old_value: no current value given for {missing}")
        for k, i in now.items():
            current[k] = i
        return current

    def render(self, labels: Mapping[str, str]) -> Image.Image:
        """The scene ``labels`` describe, drawn by the schema's renderer."""
        from .scenes.render import render_scene

        return render_scene(self.schema, labels)

    def edit(self, image: Any, method: str | None = None, **changes: Any) -> Edit:
        """Encode ``image``, swap the ``changes`` (``colour="red"``, ...) in vector space, decompose the
        edited vector and render the scene it describes."""
        if not changes:
            raise ValueError("edit: give at least one change, e.g. colour='red'; "
                             f"attributes: {list(self.schema.names)}")
        parse_changes(self.codebooks, changes)
        x = self.preprocess(image)
        if len(x) != 1:
            raise ValueError(f"edit: expected one image, got {len(x)}")
        q = self.encode(x)
        before = self.decode(q, method)
        edited = swap(q, self.codebooks, changes, before.indices)
        after = self.decode(edited, method)
        rec = self._records(after)[0]
        return Edit(labels=rec.labels, confidence=rec.confidence, image=self.render(rec.labels),
                    before=self._records(before)[0], vector=edited[0].cpu(), changes=dict(changes))

    def _records(self, res: Decomposition) -> list[Recognition]:
        names = self.codebooks.names
        conf = res.confidence.clamp(0, 1).cpu().tolist()
        sim = res.similarity.cpu().tolist()
        return [Recognition(labels=lab, confidence=dict(zip(names, c)), indices=idx, similarity=s)
                for lab, c, idx, s in zip(res.labels, conf, res.indices.cpu().tolist(), sim)]
