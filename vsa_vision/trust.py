"""Knowing when not to answer: whether an input is a scene of the model's schema (``known``), and the
probability that an answer is right, from rules fitted on data and stored in the checkpoint.

Every answer is described by a few numbers (:func:`trust_features`), from the encoder's vector, the
decomposition, and the image against a fresh render of the answer (analysis by synthesis):

- one object a scene: ``similarity`` (cosine of the vector to the bound answer), the smallest and
  the mean per-factor ``margin`` (how far each chosen value leads every other value of its factor),
  ``norm`` (the vector's length over sqrt(D)), ``render_corr`` (the correlation of the lightly blurred
  image with the render of the answer) and ``render_overlap`` (how much of each one's silhouette the
  other covers, within a pixel) and ``render_hue`` (how far the image's colours, as proportions of
  red, green and blue, are from the render's inside the objects: blind to brightness and contrast),
  and ``blobs``, the number of separate objects in the image (:func:`count_blobs`) beyond what the
  answer holds, and ``background`` (:func:`background_level`), how far the image outside its objects
  is from the clean black of a scene: the level of noise, compression ringing or lost contrast, which
  tells a colour shifted by a degradation (JPEG's chroma, noise) from a colour of no scene on a clean
  background;
- several objects: ``fit`` (1 minus the residual), the smallest and mean object confidence, the
  smallest and largest amplitude relative to the first object's, the count, ``norm``, the same render
  features, ``blobs`` and ``background``.

Beside the fitted rule, three fixed checks compare the image with the render of the answer: every object
of a schema has one colour, so an answer under whose objects the image holds two (an outline with
another object drawn inside it, read as one object: :func:`colour_spread`), whose shapes hold ink the
answer does not draw (the same, read as the outline alone or as the inside alone:
:func:`unexplained_ink`), or that puts two objects at one place (:func:`shared_place`) is refused
whatever the rule's score, with probability 0.

:func:`fit_trust` draws a calibration set (scenes of the schema, clean and degraded at every
severity of :mod:`~vsa_vision.scenes.degrade`, and foreign inputs of every kind of
:mod:`~vsa_vision.scenes.foreign`), fits with scikit-learn a logistic rule for ``known`` (its threshold
keeps 99.9% of the clean scenes and 99% of every scene read right, JPEG-compressed and noisy ones
included, while refusing 99.8% of blank frames, noise, photographs and inverted scenes and 93% of
all foreign inputs: :func:`~vsa_vision.trust_fit._threshold`) and, per answer and per attribute (per
object for several), a logistic score calibrated by isotonic regression on a second half of the
data, and returns a JSON record that :class:`TrustRule` evaluates with plain tensor arithmetic (no
scikit-learn at inference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .decompose import Decomposition, SetDecomposition
from .encoder import gaussian_blur5, object_masks
from .scene_checks import (  # noqa: F401  (CHECKS, REFUSED_SCORE: public here too)
    CHECKS,
    MIN_AREA,
    REFUSED_SCORE,
    as_uint8_cpu,
    colour_spread,
    refused,
    shape_components,
    shared_place,
    unexplained_ink,
)

__all__ = ["FEATURES", "SET_FEATURES", "VECTOR_FEATURES", "TrustRule", "trust_features", "trust_checks",
           "colour_spread", "unexplained_ink", "render_answers", "image_agreement"]

FEATURES = ("similarity", "min_margin", "mean_margin", "norm", "render_corr", "render_overlap", "render_hue",
            "blobs", "background")
SET_FEATURES = ("fit", "min_confidence", "mean_confidence", "min_amplitude", "max_amplitude", "count", "norm",
                "render_corr", "render_overlap", "render_hue", "blobs", "background")
#: the features of rules fitted before ``background`` (their columns are the first of today's): still read
LEGACY_FEATURES = {FEATURES[:-1]: FEATURES, SET_FEATURES[:-1]: SET_FEATURES}
OBJECT_FEATURES = ("confidence", "amplitude", "fit", "render_corr", "render_overlap", "render_hue")
#: one object a scene of a schema the built-in renderer cannot draw (a user's own attributes): the
#: features of the vector and its decomposition alone
VECTOR_FEATURES = FEATURES[:4]
RECORD_VERSION = 1


# -- features ------------------------------------------------------------------------------------


def _silhouettes(images: Tensor) -> Tensor:
    """The denoised silhouettes ``float [B, 1, H, W]`` of ``uint8`` images (:func:`object_masks`)."""
    return object_masks(images.float() / 255.0, denoise=True)[0]


def image_agreement(images: Tensor, rendered: Tensor, masks: Tensor | None = None,
                    rendered_masks: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(corr, overlap, hue)`` ``[B]`` of images against renders of the answers (both ``uint8 [B, 3, H, W]``):
    the Pearson correlation of the blurred (sigma 1 px) images over every pixel and channel (0 when
    either is flat); the fraction of each silhouette (denoised masks) within one pixel of the
    other's, summed over both and divided by both areas (1: the same objects in the same places); and
    the mean, over the image's silhouette, of the L1 distance between the colour proportions
    ``rgb / (r + g + b)`` of the blurred image and of the render (0: the same colours). ``masks``,
    ``rendered_masks``: the images' and the renders' silhouettes when already computed."""
    a_img, b_img = gaussian_blur5(images.float() / 255.0, 1.0), gaussian_blur5(rendered.float() / 255.0, 1.0)
    a, b = a_img.flatten(1), b_img.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = (a.norm(dim=1) * b.norm(dim=1))
    corr = torch.where(den > 1e-6, (a * b).sum(1) / den.clamp_min(1e-6), torch.zeros_like(den))
    ma = _silhouettes(images) if masks is None else masks
    mb = _silhouettes(rendered) if rendered_masks is None else rendered_masks
    da, db = F.max_pool2d(ma, 3, 1, 1), F.max_pool2d(mb, 3, 1, 1)
    covered = (ma * db).flatten(1).sum(1) + (mb * da).flatten(1).sum(1)
    area = ma.flatten(1).sum(1) + mb.flatten(1).sum(1)
    overlap = torch.where(area > 0, covered / area.clamp_min(1.0), torch.ones_like(area))
    pa = a_img / a_img.sum(1, keepdim=True).clamp_min(0.05)
    pb = b_img / b_img.sum(1, keepdim=True).clamp_min(0.05)
    inside = ma.flatten(1).sum(1)
    hue = ((pa - pb).abs().sum(1, keepdim=True) * ma).flatten(1).sum(1) / inside.clamp_min(1.0)
    return corr, overlap, hue


def count_blobs(images: Tensor, min_area: float = MIN_AREA, masks: Tensor | None = None,
                components: tuple[np.ndarray, int] | None = None) -> Tensor:
    """The number of separate shapes in each image ``[B]``: 8-connected components of the denoised
    silhouette (:func:`~vsa_vision.encoder.object_masks`; :func:`~vsa_vision.scene_checks.shape_components`)
    of at least ``min_area`` pixels at 64 px (scaled with the side; the smallest outline of the default
    schema covers about 30). ``masks``: the images' silhouettes when already computed; ``components``
    their components."""
    if components is None:
        components = shape_components(_silhouettes(images) if masks is None else masks)
    labels, n = components
    B = labels.shape[0]
    if n == 0:
        return torch.zeros(B, dtype=torch.float64)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = sizes >= min_area * (labels.shape[-1] / 64.0) ** 2
    big[0] = False
    image_of = np.zeros(n + 1, dtype=np.int64)
    flat = labels.reshape(B, -1)
    for_image = np.repeat(np.arange(B), flat.shape[1])
    image_of[flat.ravel()] = for_image  # the image each component lies in
    return torch.from_numpy(np.bincount(image_of[big], minlength=B).astype(np.float64))


def background_level(images: Tensor, masks: Tensor) -> Tensor:
    """``[B]``: the mean brightest channel (0..1) of the pixels farther than one pixel from every
    object's silhouette (``masks``, :func:`_silhouettes`); 0 for a clean scene on black, the level of
    pixel noise, JPEG ringing or a contrast loss otherwise."""
    outside = 1.0 - F.max_pool2d(masks, 3, 1, 1)
    level = (images.float() / 255.0).amax(1, keepdim=True) * outside
    return (level.flatten(1).sum(1) / outside.flatten(1).sum(1).clamp_min(1.0)).double()


def render_answers(schema, res: Decomposition | SetDecomposition) -> Tensor:
    """The answers drawn by the schema's renderer (standard nuisances): ``uint8 [B, 3, H, W]``."""
    from .scenes.render import Renderer

    renderer = Renderer(schema)
    if isinstance(res, SetDecomposition):
        arrays = [renderer.render_objects(o.cpu().tolist()) for o in res.objects]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    arrays = renderer.render_batch(res.indices.cpu().numpy())
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()


def _amplitudes(res: SetDecomposition) -> tuple[Tensor, Tensor]:
    lo, hi = [], []
    for a in res.amplitude:
        rel = a.abs() / a.abs()[0].clamp_min(1e-6) if len(a) else torch.zeros(1)
        lo.append(float(rel.min()))
        hi.append(float(rel.max()))
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)


def trust_features(schema, images: Tensor, q: Tensor, res: Decomposition | SetDecomposition) -> Tensor:
    """The features of :data:`FEATURES` (one object a scene), :data:`VECTOR_FEATURES` (one object of
    a schema the built-in renderer cannot draw) or :data:`SET_FEATURES` (several), ``float64 [B, F]``,
    for ``uint8`` images, the encoder's vectors ``q`` and their decomposition."""
    return _measures(schema, images, q, res, checks=False)[0]


def trust_checks(schema, images: Tensor, q: Tensor, res: Decomposition | SetDecomposition
                 ) -> tuple[Tensor, Tensor | None]:
    """``(trust_features(...), checks)`` from one render of the answers: ``checks`` ``float64 [B, 3]``
    holds :data:`CHECKS` (:func:`colour_spread`, 0 for a schema without colours; :func:`unexplained_ink`;
    :func:`shared_place`), None for a schema the built-in renderer cannot draw."""
    return _measures(schema, images, q, res, checks=True)


def _measures(schema, images: Tensor, q: Tensor, res: Decomposition | SetDecomposition, checks: bool
              ) -> tuple[Tensor, Tensor | None]:
    """:func:`trust_features`, and (``checks``) the fixed checks from the same masks, shapes and render."""
    sets = isinstance(res, SetDecomposition)
    norm = (q.detach().double().norm(dim=-1) / math.sqrt(q.shape[-1])).cpu()
    if not sets:  # the features of the vector and its decomposition (VECTOR_FEATURES) come first
        margin = res.margin.double().cpu()
        vector = [res.similarity.double().cpu(), margin.min(1).values, margin.mean(1), norm]
        if not schema.renderable:
            return torch.stack(vector, 1), None
    images = images.cpu()
    masks, holes = object_masks(images.float() / 255.0, denoise=True)  # for the render comparison, the shape count
    rendered = render_answers(schema, res)
    drawn = object_masks(rendered.float() / 255.0, denoise=True)  # the render's silhouettes and holes
    corr, overlap, hue = image_agreement(images, rendered, masks, drawn[0])
    answered = res.counts.double().cpu() if sets else torch.ones(len(images), dtype=torch.float64)
    shapes = shape_components(masks)  # labelled once, for the shape count and the ink check
    blobs = count_blobs(images, components=shapes) - answered
    background = background_level(images, masks)
    if sets:
        conf = [c.double().cpu() for c in res.confidence]
        cmin = torch.tensor([float(c.min()) if len(c) else 0.0 for c in conf], dtype=torch.float64)
        cmean = torch.tensor([float(c.mean()) if len(c) else 0.0 for c in conf], dtype=torch.float64)
        alo, ahi = _amplitudes(res)
        cols = [1 - res.residual.double().cpu(), cmin, cmean, alo, ahi, res.counts.double().cpu(), norm,
                corr.double(), overlap.double(), hue.double(), blobs, background]
    else:
        cols = [*vector, corr.double(), overlap.double(), hue.double(), blobs, background]
    if not checks:
        return torch.stack(cols, 1), None
    spread = colour_spread(schema, images, rendered)
    spread = torch.zeros(len(images), dtype=torch.float64) if spread is None else spread
    crowded = shared_place(schema, res.objects) if sets else torch.zeros(len(images), dtype=torch.float64)
    ink = unexplained_ink(images, rendered, (masks, holes), background, drawn, shapes)
    return torch.stack(cols, 1), torch.stack([spread, ink, crowded], 1)


def object_features(res: SetDecomposition, scene_features: Tensor) -> list[Tensor]:
    """Per scene, ``float64 [m, 6]`` features of each found object (:data:`OBJECT_FEATURES`)."""
    out = []
    for c, a, f in zip(res.confidence, res.amplitude, scene_features):
        rel = a.double().cpu().abs() / a.double().cpu().abs()[0].clamp_min(1e-6) if len(a) else a.double().cpu()
        rest = f[[0, 7, 8, 9]].expand(len(c), 4)
        out.append(torch.cat([c.double().cpu()[:, None], rel[:, None], rest], 1))
    return out


# -- the fitted rule -----------------------------------------------------------------------------


def expand(z: Tensor, degree: int) -> Tensor:
    """Standardised features ``[B, F]`` and, for ``degree`` 2, every product ``z_i z_j`` (i <= j, in
    the order of scikit-learn's ``PolynomialFeatures``): a logistic rule on them draws curved
    boundaries (one object is a scene; two are not; noise makes many specks)."""
    if degree == 1:
        return z
    i, j = torch.triu_indices(z.shape[1], z.shape[1])
    return torch.cat([z, z[:, i] * z[:, j]], 1)


def _logit(part: Mapping[str, Any], x: Tensor) -> Tensor:
    mean, scale = torch.tensor(part["mean"], dtype=torch.float64), torch.tensor(part["scale"], dtype=torch.float64)
    coef = torch.tensor(part["coef"], dtype=torch.float64)
    return expand((x - mean) / scale, int(part.get("degree", 1))) @ coef + float(part["intercept"])


def _interp(x: Tensor, xs: Sequence[float], ys: Sequence[float]) -> Tensor:
    """The isotonic map: piecewise linear through (xs, ys), constant outside."""
    return torch.from_numpy(np.interp(x.numpy(), np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)))


def _calibrated(part: Mapping[str, Any], x: Tensor) -> Tensor:
    return _interp(_logit(part, x), part["iso_x"], part["iso_y"]).clamp(0.0, 1.0)


class TrustRule:
    """A fitted record (from :func:`vsa_vision.trust_fit.fit_trust`, stored in the checkpoint) evaluated
    on features: :meth:`known`, :meth:`probability`, :meth:`attribute_probability` (one object a
    scene) and :meth:`object_probability` (several).

    The record is checked whole when the rule is made (:func:`check_record`), so a rule that would
    give NaN, a shape error or a missing part at recognition is refused up front: a ``ValueError``
    naming the part (``known.coef``, ``attributes[2].scale``, ...). ``features`` (the features the
    model computes, :func:`model_features`) and ``attributes`` (its number of attributes) also
    check that the rule is the model's."""

    def __init__(self, record: Mapping[str, Any], features: Sequence[str] | None = None,
                 attributes: int | None = None) -> None:
        check_record(record, features, attributes)
        self.record = dict(record)
        self._n = len(self.record["features"])  # a legacy rule reads the first columns of today's features

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.record["features"])

    def known_score(self, x: Tensor, checks: Tensor | None = None) -> Tensor:
        """The logit of the input being a scene of the schema ``[B]``; at most :data:`REFUSED_SCORE`
        where a fixed check (``checks``, :func:`trust_checks`) refuses the answer."""
        score = _logit(self.record["known"], x[:, :self._n])
        return score if checks is None else torch.minimum(score, score.masked_fill(refused(checks), REFUSED_SCORE))

    def known(self, x: Tensor, checks: Tensor | None = None) -> Tensor:
        return self.known_score(x, checks) >= float(self.record["known"]["threshold"])

    def probability(self, x: Tensor, checks: Tensor | None = None) -> Tensor:
        """The calibrated probability that the whole answer is right ``[B]`` (0 where a fixed check
        refuses the answer: it describes no scene of the schema)."""
        p = _calibrated(self.record["probability"], x[:, :self._n])
        return p if checks is None else p.masked_fill(refused(checks), 0.0)

    def attribute_probability(self, x: Tensor, margins: Tensor) -> Tensor:
        """Per attribute, the calibrated probability that its value is right ``[B, K]``."""
        cols = []
        for k, part in enumerate(self.record["attributes"]):
            cols.append(_calibrated(part, torch.cat([margins[:, k:k + 1].double().cpu(), x[:, :self._n]], 1)))
        return torch.stack(cols, 1)

    def object_probability(self, objects: Sequence[Tensor]) -> list[Tensor]:
        """Per scene, the calibrated probability that each found object is one of the scene's ``[m]``."""
        part = self.record["objects"]
        return [_calibrated(part, f) if len(f) else torch.zeros(0, dtype=torch.float64) for f in objects]


def model_features(schema: Any) -> tuple[str, ...]:
    """The features a model of ``schema`` computes for its rule (:func:`trust_features`):
    :data:`SET_FEATURES` for several objects a scene, :data:`FEATURES` for one the built-in renderer
    draws, :data:`VECTOR_FEATURES` for one it cannot."""
    if schema.max_objects > 1:
        return SET_FEATURES
    return FEATURES if schema.renderable else VECTOR_FEATURES


_REFIT = "; refit the rule with 'vsa-vision calibrate'"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(where: str, v: Any) -> float:
    if not _is_number(v):
        raise ValueError(f"trust record: {where} must be a number, got {v!r}{_REFIT}")
    if not math.isfinite(v):
        raise ValueError(f"trust record: {where} is {v!r}, not a finite number{_REFIT}")
    return float(v)


def _finite_list(where: str, v: Any, n: int | None = None) -> list[float]:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"trust record: {where} must be a list of numbers, got {type(v).__name__}{_REFIT}")
    if n is not None and len(v) != n:
        raise ValueError(f"trust record: {where} holds {len(v)} numbers, expected {n}{_REFIT}")
    return [_finite(f"{where}[{i}]", x) for i, x in enumerate(v)]


def _check_part(where: str, part: Any, n_in: int, calibrated: bool, threshold: bool = False) -> None:
    """One logistic part of a record: ``mean`` and ``scale`` of ``n_in`` finite numbers (no zero
    scale), ``coef`` of as many numbers as :func:`expand` gives at its ``degree`` (1 or 2), a finite
    ``intercept``; ``calibrated``: the isotonic map ``iso_x`` (non-decreasing) and ``iso_y`` in [0, 1]
    of one length; ``threshold``: a finite ``threshold``."""
    if not isinstance(part, Mapping):
        raise ValueError(f"trust record: {where} must be an object, got {type(part).__name__}{_REFIT}")
    need = ["mean", "scale", "coef", "intercept", *(["iso_x", "iso_y"] if calibrated else []),
            *(["threshold"] if threshold else [])]
    missing = [k for k in need if k not in part]
    if missing:
        raise ValueError(f"trust record: {where}.{missing[0]} is missing{_REFIT}")
    degree = part.get("degree", 1)
    if isinstance(degree, bool) or degree not in (1, 2):
        raise ValueError(f"trust record: {where}.degree must be 1 or 2, got {degree!r}{_REFIT}")
    _finite_list(f"{where}.mean", part["mean"], n_in)
    scale = _finite_list(f"{where}.scale", part["scale"], n_in)
    zero = [i for i, v in enumerate(scale) if v == 0]
    if zero:
        raise ValueError(f"trust record: {where}.scale[{zero[0]}] is 0 (a feature divided by zero){_REFIT}")
    _finite_list(f"{where}.coef", part["coef"], n_in if degree == 1 else n_in + n_in * (n_in + 1) // 2)
    _finite(f"{where}.intercept", part["intercept"])
    if calibrated:
        xs = _finite_list(f"{where}.iso_x", part["iso_x"])
        ys = _finite_list(f"{where}.iso_y", part["iso_y"], len(xs))
        if not xs:
            raise ValueError(f"trust record: {where}.iso_x is empty{_REFIT}")
        if any(b < a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"trust record: {where}.iso_x must be in increasing order{_REFIT}")
        if any(not 0.0 <= y <= 1.0 for y in ys):
            raise ValueError(f"trust record: {where}.iso_y must hold probabilities in [0, 1]{_REFIT}")
    if threshold:
        _finite(f"{where}.threshold", part["threshold"])


def check_record(record: Any, features: Sequence[str] | None = None, attributes: int | None = None) -> None:
    """Refuse (``ValueError`` naming the part) a trust record :class:`TrustRule` cannot evaluate:
    another version; features this version does not compute or (``features``) other than the
    model's; a missing ``known`` or ``probability``; a part of another number of features than the
    record's (an attribute's part has one more: its margin; the object part of a record of several
    objects has :data:`OBJECT_FEATURES`), coefficients that do not fit its degree, a number that is
    not finite, a zero scale, an isotonic map out of order; ``attributes`` (one object a scene): a
    part per attribute."""
    if not isinstance(record, Mapping):
        raise ValueError(f"trust record: must be an object, got {type(record).__name__}{_REFIT}")
    if record.get("version") != RECORD_VERSION:
        raise ValueError(f"trust record: version {record.get('version')!r} is not one this version of vsa_vision "
                         f"reads ({RECORD_VERSION}){_REFIT}")
    got = record.get("features")
    names = tuple(got) if isinstance(got, (list, tuple)) else None
    if names not in (FEATURES, SET_FEATURES, VECTOR_FEATURES, *LEGACY_FEATURES):
        raise ValueError(f"trust record: fitted on features {got!r}, which this version of vsa_vision does not "
                         f"compute{_REFIT}")
    current = LEGACY_FEATURES.get(names, names)  # a legacy rule: the features of today it reads the first of
    if features is not None and current != tuple(features):
        raise ValueError(f"trust record: fitted on the features {list(names)}, but this model computes "
                         f"{list(features)} (a rule of another kind of model){_REFIT}")
    n = len(names)
    for key in ("known", "probability"):
        if key not in record:
            raise ValueError(f"trust record: {key} is missing{_REFIT}")
    _check_part("known", record["known"], n, calibrated=False, threshold=True)
    _check_part("probability", record["probability"], n, calibrated=True)
    if current == SET_FEATURES:
        if "objects" not in record:
            raise ValueError(f"trust record: objects is missing{_REFIT}")
        if tuple(record.get("object_features", OBJECT_FEATURES)) != OBJECT_FEATURES:
            raise ValueError(f"trust record: object_features {record.get('object_features')!r} are not "
                             f"{list(OBJECT_FEATURES)}{_REFIT}")
        _check_part("objects", record["objects"], len(OBJECT_FEATURES), calibrated=True)
        return
    parts = record.get("attributes")
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ValueError(f"trust record: attributes must be a list of a part per attribute, got {parts!r:.60}"
                         f"{_REFIT}")
    if attributes is not None and len(parts) != attributes:
        raise ValueError(f"trust record: attributes holds {len(parts)} parts, but the model has {attributes} "
                         f"attributes{_REFIT}")
    for k, part in enumerate(parts):
        _check_part(f"attributes[{k}]", part, n + 1, calibrated=True)


FALLBACK_SIMILARITY = 0.5  # without a fitted rule: known when the answer explains this much of the vector


def assess(model, images: Tensor, q: Tensor, res: Decomposition | SetDecomposition) -> dict[str, Any]:
    """What the model's rule says of each answer: ``known`` ``[B]`` bool, ``probability`` ``[B]`` (None
    without a fitted rule), ``attribute_probability`` ``[B, K]`` (one object a scene) and
    ``object_probability`` (several: one ``[m]`` tensor per scene). A model without a fitted rule
    calls an answer known when it explains at least half of the vector (similarity, or 1 minus the
    residual, >= :data:`FALLBACK_SIMILARITY`) and gives no probabilities."""
    sets = isinstance(res, SetDecomposition)
    record = getattr(model, "trust", None)
    if record is None:
        fit = (1 - res.residual) if sets else res.similarity
        return {"known": (fit.detach().cpu() >= FALLBACK_SIMILARITY), "probability": None,
                "attribute_probability": None, "object_probability": None}
    rule = TrustRule(record)
    x, checks = trust_checks(model.schema, as_uint8_cpu(images), q, res)
    out: dict[str, Any] = {"known": rule.known(x, checks), "probability": rule.probability(x, checks),
                           "attribute_probability": None, "object_probability": None}
    if sets:
        out["object_probability"] = rule.object_probability(object_features(res, x))
    else:
        # every attribute is right when the whole answer is: an attribute is never less likely than the whole
        out["attribute_probability"] = torch.maximum(rule.attribute_probability(x, res.margin),
                                                     out["probability"][:, None])
    if checks is not None:  # an answer a fixed check refuses describes no scene: nothing of it is trusted
        no = refused(checks)
        if sets:
            out["object_probability"] = [p.masked_fill(n, 0.0) for p, n in zip(out["object_probability"], no)]
        else:
            out["attribute_probability"] = out["attribute_probability"].masked_fill(no[:, None], 0.0)
    return out
