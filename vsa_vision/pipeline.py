"""The public entry point for a trained model: images in, attribute labels out.

    >>> from vsa_vision import Pipeline
    >>> pipe = Pipeline.from_checkpoint()          # the shipped checkpoint; or a path, or a shipped name
    >>> recs = pipe.recognize(images)              # PIL images, or a [B, 3, H, W] tensor
    >>> recs[0].labels, recs[0].confidence         # {attribute: value}, {attribute: float}

Input policy: any image Pillow reads is converted to RGB (transparent pixels are composited onto
the black background the scenes are drawn on); an image of another size is padded with black to a
square, centred, then resized to the model's input size (box filter when shrinking, bilinear when
enlarging), so shapes keep their aspect ratio. Tensors: ``uint8`` 0..255 or floats in [0, 1]
(anything else is refused: a float tensor of 0..255 values would be read wrongly), ``[B, 3, H, W]``
or one ``[3, H, W]``; at another size they are padded and resized exactly like the PIL image of the
same pixels (uint8 bit for bit, floats within rounding to 1/255).

Memory: ``recognize`` takes an iterator (a generator of PIL images, say) as well as a list, and
shrinks it a batch at a time; :meth:`Pipeline.recognize_files` opens each file just before its
batch, so at most ``batch_size`` full-size images are decoded at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .checkpoint import load_model
from .checks import check_int
from .decompose import Decomposition, SetDecomposition
from .edit import parse_changes, swap
from .model import VSAModel
from .scenes.images import _pad_and_resize, open_image, prepare_image  # noqa: F401 (public here too)
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
    #: every object of the scene, ordered by position (one for a single-object model), and the
    #: confidence of each (for several objects: the cosine of its bound vector with what the others
    #: leave of the encoder's vector)
    objects: list[dict[str, str]] = field(default_factory=list)
    object_confidence: list[float] = field(default_factory=list)
    #: whether the input is a scene of the model's schema, by the rule fitted into the checkpoint
    #: (:mod:`vsa_vision.trust`); False for a blank frame, noise, a photograph, an inverted image, an
    #: object of a kind the schema lacks, too many objects. ``labels`` are given either way.
    known: bool = True
    #: the calibrated probability that the whole answer is right (every attribute; for several
    #: objects, every object and the count); None for a checkpoint without fitted rules
    probability: float | None = None
    #: per attribute, the calibrated probability that its value is right (one object a scene)
    attribute_probability: dict[str, float] = field(default_factory=dict)
    #: per object (in ``objects`` order), the calibrated probability that it is one of the scene's
    object_probability: list[float] = field(default_factory=list)


def check_image_tensor(images: Tensor) -> Tensor:
    """``images`` as ``[B, 3, H, W]``, if it is ``uint8`` or floating point with every value in [0, 1]."""
    x = images[None] if images.ndim == 3 else images
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images: expected a tensor [B, 3, H, W] or [3, H, W], got {tuple(images.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"images: expected a uint8 or floating point tensor, got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("images: a float tensor must hold values in [0, 1]; found values that are not finite "
                         "(NaN or inf); pass floats in [0, 1] or uint8 0..255")
    lo, hi = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images: a float tensor must hold values in [0, 1]; found values in [{lo:g}, {hi:g}]; "
                         "pass floats in [0, 1] (e.g. divide a 0..255 image by 255) or a uint8 tensor 0..255")
    return x


def prepare_tensor(images: Tensor, side: int) -> Tensor:
    """A tensor ``[B, 3, H, W]`` or ``[3, H, W]`` (``uint8`` 0..255 or floats in [0, 1]) ->
    ``[B, 3, side, side]`` of the same dtype: unchanged at that size, else padded to a square and
    resized exactly like the PIL image of the same pixels (uint8 through Pillow itself, floats through
    Pillow's float mode, one channel at a time, so that nothing is rounded)."""
    x = check_image_tensor(images)
    if x.shape[-2:] == (side, side):
        return x
    arr = x.detach().cpu().numpy()
    if x.dtype == torch.uint8:
        out = np.stack([prepare_image(Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0))), side)
                        for a in arr]).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(out))
    planes = [[np.asarray(_pad_and_resize(Image.fromarray(c.astype(np.float32)), side)) for c in a]
              for a in arr]
    return torch.from_numpy(np.array(planes, dtype=np.float32)).clamp_(0, 1)


def _stack(arrays: Sequence[np.ndarray]) -> Tensor:
    """``uint8 [side, side, 3]`` arrays -> ``uint8 [B, 3, side, side]``."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _batched(arrays: Iterable[np.ndarray], batch_size: int) -> Iterator[Tensor]:
    """Stacked batches of at most ``batch_size`` prepared images, drawn from ``arrays`` as needed."""
    it = iter(arrays)
    while chunk := list(islice(it, batch_size)):
        yield _stack(chunk)


@dataclass
class Edit:
    """The result of :meth:`Pipeline.edit`: the decoded attributes of the edited vector (``labels``,
    ``confidence``), the scene they describe rendered (``image``), what the input was recognised as
    (``before``, with ``known`` and the probabilities of the model's trust rule: an edit of an input
    that is no scene can be refused by the caller), the edited vector and the changes asked for."""

    labels: dict[str, str]
    confidence: dict[str, float]
    image: Image.Image
    before: Recognition
    vector: Tensor
    changes: dict[str, Any]
    objects: list[dict[str, str]] = field(default_factory=list)
    #: what drew ``image``: ``"renderer"`` (the built-in one), ``"decoder"`` (the model's learned
    #: decoder) or ``"user"`` (the renderer passed to :class:`Pipeline`)
    drawn_by: str = "renderer"


class Pipeline:
    """A trained encoder with its codebooks and a decomposer head, on one device."""

    def __init__(self, model: VSAModel, method: str | None = None, device: str | torch.device | None = None,
                 renderer: Callable[[dict[str, str]], Image.Image] | None = None) -> None:
        if not isinstance(model, VSAModel):
            raise TypeError(f"model: expected a VSAModel, got {type(model).__name__}")
        if renderer is not None and not callable(renderer):
            raise TypeError(f"renderer: expected a callable labels -> PIL image, got {type(renderer).__name__}")
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        #: the head: by default ``"auto"``, the cheaper of exhaustive search and the model's own method
        #: (diffusion) for the codebooks' shape (:class:`~vsa_vision.decompose.CheapestDecomposer`)
        self.method = method or "auto"
        #: the user's renderer (``{attribute: value} -> PIL image``; for several objects, a list of them),
        #: which draws edits instead of the built-in renderer or the learned decoder
        self.renderer = renderer

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        method: str | None = None,
                        renderer: Callable[[dict[str, str]], Image.Image] | None = None) -> Pipeline:
        """Load a ``.ckpt`` or ``.safetensors`` checkpoint, or a shipped one by name (``"default"``;
        :func:`vsa_vision.checkpoint.shipped_checkpoints` lists them). Default: the shipped ``"default"``.
        ``renderer``: see :meth:`render`."""
        return cls(load_model(path, map_location=device), method=method, renderer=renderer)

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
        """Images by the module's input policy -> ``uint8 [B, 3, S, S]`` (or float for float tensors):
        a tensor, one PIL image, or a list (any iterable) of PIL images."""
        side = self.image_size
        if isinstance(images, Tensor):
            return prepare_tensor(images, side)
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, (str, bytes, os.PathLike)) or not isinstance(images, Iterable):
            raise TypeError(f"images: expected PIL images or a tensor, got {type(images).__name__}")
        arrays = [prepare_image(im, side) for im in images]
        if not arrays:
            raise ValueError("images: empty list")
        return _stack(arrays)

    def batches(self, images: Any, batch_size: int = 256) -> Iterator[Tensor]:
        """``images`` preprocessed, ``batch_size`` at a time. A tensor is sliced; PIL images (a list,
        or any iterable such as a generator that opens them) are shrunk as they come, so a lazy
        source never has more than one batch of full-size images decoded. An empty list is an error,
        an empty iterator gives no batch."""
        batch_size = check_int("batch_size", batch_size, 1)
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, Tensor) or (isinstance(images, Sequence) and not images):
            x = self.preprocess(images)
            return (x[i:i + batch_size] for i in range(0, len(x), batch_size))
        if isinstance(images, (str, bytes, os.PathLike)) or not isinstance(images, Iterable):
            raise TypeError(f"images: expected PIL images or a tensor, got {type(images).__name__}")
        side = self.image_size
        return _batched((prepare_image(im, side) for im in images), batch_size)

    @torch.inference_mode()
    def encode(self, images: Any, batch_size: int = 256) -> Tensor:
        """The encoder's vectors ``[B, D]``, computed in batches on the pipeline's device."""
        out = [self.model(x.to(self.device)) for x in self.batches(images, batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.model.hparams.dim, device=self.device)

    @torch.inference_mode()
    def decode(self, vectors: Tensor, method: str | None = None) -> Decomposition:
        """Decompose vectors ``[B, D]`` with the head ``method`` (default: the pipeline's)."""
        return self.model.decode(vectors.to(self.device), method or self.method)

    def recognize(self, images: Any, method: str | None = None, batch_size: int = 256) -> list[Recognition]:
        """Attribute labels with per-factor confidence for every image, ``batch_size`` images at a
        time: a tensor, PIL images, or an iterator of PIL images (shrunk one batch at a time)."""
        recs: list[Recognition] = []
        for x in self.batches(images, batch_size):
            q = self.encode(x, batch_size=batch_size)
            recs.extend(self._records(self.decode(q, method), x, q))
        return recs

    def recognize_files(self, paths: Iterable[str | os.PathLike], method: str | None = None,
                        batch_size: int = 256) -> tuple[list[tuple[str, Recognition]], list[tuple[str, str]]]:
        """Recognise image files, opening and shrinking each just before its batch (at most one
        full-size image is decoded at a time; memory is bounded by ``batch_size`` small images).

        Returns ``(recognitions, errors)``: ``(path, Recognition)`` for every readable file, in the
        order given, and ``(path, message)`` for every file that is missing or not a readable image."""
        batch_size = check_int("batch_size", batch_size, 1)
        good: list[str] = []
        errors: list[tuple[str, str]] = []
        side = self.image_size

        def shrunk() -> Iterator[np.ndarray]:
            for p in map(os.fspath, paths):
                try:
                    arr = prepare_image(open_image(p), side)
                except (FileNotFoundError, ValueError, OSError) as e:
                    errors.append((p, str(e) if str(e).startswith(p) else f"{p}: not a readable image ({e})"))
                    continue
                good.append(p)
                yield arr

        recs = []
        for x in _batched(shrunk(), batch_size):
            q = self.encode(x, batch_size=batch_size)
            recs.extend(self._records(self.decode(q, method), x, q))
        return list(zip(good, recs)), errors

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

    @property
    def drawer(self) -> str:
        """What :meth:`render` draws with: ``"user"`` (the renderer given to the pipeline),
        ``"renderer"`` (the built-in one, for a schema whose attributes all have a role) or
        ``"decoder"`` (the model's learned decoder); ``"none"`` when there is nothing to draw with."""
        if self.renderer is not None:
            return "user"
        if self.schema.renderable:
            return "renderer"
        return "decoder" if getattr(self.model, "decoder", None) is not None else "none"

    def render(self, labels: Mapping[str, str] | Sequence[Mapping[str, str]]) -> Image.Image:
        """The scene ``labels`` describe (a list of objects for a model of several), drawn by
        :attr:`drawer`: the user's renderer (called with the labels, must return a PIL image), the
        built-in renderer, or the model's learned decoder (one object a scene)."""
        kind = self.drawer
        if kind == "user":
            img = self.renderer(dict(labels) if isinstance(labels, Mapping) else [dict(o) for o in labels])
            if not isinstance(img, Image.Image):
                raise TypeError(f"renderer: returned {type(img).__name__}, expected a PIL image")
            return img.convert("RGB")
        if kind == "renderer":
            from .scenes.render import render_scene

            return render_scene(self.schema, labels)
        if kind == "decoder":
            if not isinstance(labels, Mapping):
                raise ValueError("render: the learned decoder draws one object a scene; pass its labels as a mapping")
            idx = torch.as_tensor(self.schema.encode(labels), device=self.device)
            arr = self.model.decoder.draw(idx)[0].permute(1, 2, 0).cpu().numpy()
            return Image.fromarray(np.ascontiguousarray(arr))
        raise ValueError(f"render: nothing can draw schema {self.schema.name!r}: the built-in renderer draws only "
                         "attributes with a role, this model has no learned decoder (train one with decoder: <width>, "
                         "as configs/own.yaml does), and no renderer was given (Pipeline(..., renderer=f) with f "
                         "taking {attribute: value} and returning a PIL image)")

    def edit(self, image: Any, method: str | None = None, where: Mapping[str, Any] | None = None,
             object: int | None = None, remove: bool = False, add: Mapping[str, Any] | None = None,
             **changes: Any) -> Edit:
        """Encode ``image``, swap the ``changes`` (``colour="red"``, ...) in vector space, decompose the
        edited vector and render the scene it describes.

        For a model of several objects, the edit applies to the objects selected by ``where``
        (``{"shape": "circle", "colour": "red"}``: every object with those values) or ``object`` (an
        index into :attr:`Recognition.objects`): their bound vectors are replaced by the changed
        ones (``remove=True``: subtracted); ``add`` (every attribute of a new object) adds one."""
        if self.schema.max_objects > 1:
            return self._edit_objects(image, method, where, object, remove, add, changes)
        if where is not None or object is not None or remove or add is not None:
            raise ValueError("edit: where=, object=, remove= and add= select objects of a scene of several; "
                             f"this model's schema {self.schema.name!r} holds one object an image")
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
                    before=self._records(before, x, q)[0], vector=edited[0].cpu(), changes=dict(changes),
                    drawn_by=self.drawer)

    def _edit_objects(self, image: Any, method: str | None, where: Mapping[str, Any] | None, index: int | None,
                      remove: bool, add: Mapping[str, Any] | None, changes: dict[str, Any]) -> Edit:
        from .edit_objects import check_edit, edit_objects, select_objects

        check_edit(changes, remove, add, selected=where is not None or index is not None)  # before any work
        x = self.preprocess(image)
        if len(x) != 1:
            raise ValueError(f"edit: expected one image, got {len(x)}")
        q = self.encode(x)
        before = self._records(self.decode(q, method), x, q)[0]
        objects = self.codebooks.indices_of(before.objects) if before.objects else \
            torch.zeros(0, self.codebooks.num_factors, dtype=torch.long, device=self.device)
        rows = [] if add is not None and where is None and index is None else \
            select_objects(self.codebooks, objects, where, index)
        edited, _ = edit_objects(q[0], self.codebooks, self.schema, objects, rows, changes, remove, add)
        rec = self._records(self.decode(edited[None], method))[0]
        return Edit(labels=rec.labels, confidence=rec.confidence, image=self.render(rec.objects), before=before,
                    vector=edited.cpu(), changes=dict(changes), objects=rec.objects, drawn_by=self.drawer)

    def _records(self, res: Decomposition | SetDecomposition, images: Tensor | None = None,
                 q: Tensor | None = None) -> list[Recognition]:
        """Recognitions of a decomposition; with the images and vectors it came from, the model's
        trust rule adds ``known`` and the probabilities."""
        recs = self._set_records(res) if isinstance(res, SetDecomposition) else self._object_records(res)
        if images is not None and q is not None:
            self._add_trust(recs, res, images, q)
        return recs

    def _object_records(self, res: Decomposition) -> list[Recognition]:
        names = self.codebooks.names
        conf = res.confidence.clamp(0, 1).cpu().tolist()
        sim = res.similarity.cpu().tolist()
        return [Recognition(labels=lab, confidence=dict(zip(names, c)), indices=idx, similarity=s, objects=[lab],
                            object_confidence=[min(c)])
                for lab, c, idx, s in zip(res.labels, conf, res.indices.cpu().tolist(), sim)]

    def _add_trust(self, recs: list[Recognition], res: Decomposition | SetDecomposition, images: Tensor,
                   q: Tensor) -> None:
        from .scenes.objects import object_order
        from .trust import assess

        judged = assess(self.model, images, q, res)
        names = self.codebooks.names
        for i, rec in enumerate(recs):
            rec.known = bool(judged["known"][i])
            if judged["probability"] is not None:
                rec.probability = float(judged["probability"][i])
            if judged["attribute_probability"] is not None:
                rec.attribute_probability = dict(zip(names, judged["attribute_probability"][i].tolist()))
                rec.object_probability = [rec.probability] if rec.probability is not None else []
            if judged["object_probability"] is not None:
                found = res.objects[i]
                order = object_order(self.schema, found.cpu().numpy()) if len(found) else []
                rec.object_probability = judged["object_probability"][i][list(order)].tolist()

    def _set_records(self, res: SetDecomposition) -> list[Recognition]:
        """Recognitions of sets of objects, each ordered by position (``y``, then ``x``)."""
        from .scenes.objects import object_order

        out = []
        for found, conf, left in zip(res.objects, res.confidence, res.residual.tolist()):
            order = object_order(self.schema, found.cpu().numpy()) if len(found) else []
            rows, c = found[list(order)], conf.clamp(0, 1).cpu()[list(order)].tolist()
            objs = self.codebooks.labels_of(rows) if len(rows) else []
            out.append(Recognition(labels={}, confidence={}, indices=[], similarity=max(0.0, 1.0 - left),
                                   objects=objs, object_confidence=c))
        return out
