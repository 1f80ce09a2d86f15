"""Fitting and measuring the rules of :mod:`vsa_vision.trust` with scikit-learn.

:func:`fit_trust` returns the JSON record a checkpoint stores; :func:`evaluate_trust` measures a
fitted model on fresh draws (another seed): the share of clean and degraded scenes it calls known,
the share of foreign inputs of each kind it calls unknown, ROC / AUROC, and the expected calibration
error of its probabilities with the data of a reliability diagram.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checks import check_choice, check_int
from .decompose import SetDecomposition
from .scenes.dataset import RenderedScenes
from .scenes.degrade import CORRUPTIONS, SEVERITIES, apply
from .scenes.foreign import FOREIGN_KINDS, foreign_images
from .trust import (
    FEATURES,
    OBJECT_FEATURES,
    RECORD_VERSION,
    SET_FEATURES,
    VECTOR_FEATURES,
    TrustRule,
    object_features,
    refused,
    trust_checks,
)

__all__ = ["calibration_set", "measure", "fit_trust", "evaluate_trust", "expected_calibration_error", "answers_right"]

CLEAN_SHARE = 0.25  # of the calibration scenes, the share left clean; the rest spread over corruption x severity


def degrade_mixed(images: Tensor, seed: int, clean_share: float = CLEAN_SHARE) -> tuple[Tensor, list[str]]:
    """Each image clean (``clean_share``) or with one corruption at one severity, evenly spread;
    returns the images and each one's condition (``"clean"`` or ``"<corruption>-<severity>"``)."""
    g = torch.Generator().manual_seed(int(seed))
    n = images.shape[0]
    conditions = [(k, s) for k in CORRUPTIONS for s in range(1, 6)]
    clean = torch.rand(n, generator=g) < clean_share
    pick = torch.randint(len(conditions), (n,), generator=g)
    out, names = images.clone(), ["clean"] * n
    for j, (kind, sev) in enumerate(conditions):
        rows = torch.nonzero(~clean & (pick == j)).flatten()
        if len(rows):
            out[rows] = apply(images[rows], kind, torch.tensor(SEVERITIES[kind][sev - 1]), generator=g)
            for r in rows.tolist():
                names[r] = f"{kind}-{sev}"
    return out, names


ALIASED_SHARE = 0.1  # of the rendered calibration scenes, the share drawn without anti-aliasing


def with_aliased(schema, images: Tensor, labels: Tensor, conditions: list[str], seed: int,
                 share: float = ALIASED_SHARE) -> tuple[Tensor, list[str]]:
    """``images`` with a ``share`` of them (drawn with ``seed``) replaced by renders of the same labels
    without supersampling (hard, aliased edges, as another renderer draws them: condition
    ``"aliased"``), so that the rules see a change of renderer."""
    from .scenes.render import Renderer

    g = torch.Generator().manual_seed(int(seed) ^ 0xA11A5)
    rows = torch.nonzero(torch.rand(len(images), generator=g) < share).flatten()
    if not len(rows):
        return images, conditions
    drawn = Renderer(schema, supersample=1).render_batch(labels[rows].numpy())
    images = images.clone()
    images[rows] = torch.from_numpy(drawn).permute(0, 3, 1, 2)
    conditions = list(conditions)
    for r in rows.tolist():
        conditions[r] = "aliased"
    return images, conditions


def dataset_images(data_dir: str, split: str, schema=None) -> tuple[Tensor, Tensor]:
    """Every image ``uint8 [n, 3, S, S]`` and label of one split of a dataset on disk."""
    from .scenes.dataset import SceneShards

    ds = SceneShards(data_dir, split, schema=schema)
    if not len(ds):
        raise ValueError(f"{data_dir}: its {split!r} split is empty; calibration needs images of it")
    images = torch.from_numpy(np.concatenate([np.asarray(a) for a in ds._arrays])).permute(0, 3, 1, 2).contiguous()
    return images, ds.indices


def calibration_set(schema, n_scenes: int, n_foreign: int, seed: int, data_dir: str | None = None) -> dict[str, Any]:
    """Scenes of the schema (degraded by :func:`degrade_mixed`) and foreign inputs: rendered (val
    split) or, with ``data_dir``, the dataset's own val images, repeated up to ``n_scenes`` with fresh
    degradations; foreign inputs of the kinds that need no renderer where the schema has none."""
    if data_dir is None:
        scenes = RenderedScenes(schema, n_scenes, seed=seed, split="val", cache=True)
        own, labels = scenes._images, scenes.indices
    else:
        own, labels = dataset_images(data_dir, "val", schema)
    reps = max(1, -(-n_scenes // len(own))) if data_dir is not None else 1
    parts = [degrade_mixed(own, seed + r) for r in range(reps)]
    images = torch.cat([p[0] for p in parts])[:max(n_scenes, len(own)) if data_dir is not None else None]
    conditions = [c for p in parts for c in p[1]][:len(images)]
    labels = labels.repeat(reps, *([1] * (labels.ndim - 1)))[:len(images)]
    if data_dir is None:  # another renderer's edges: a share drawn aliased (no supersampling), not degraded
        images, conditions = with_aliased(schema, images, labels, conditions, seed)
    foreign, kinds = foreign_images(schema, n_foreign, seed=seed, scenes=own if data_dir is not None else None)
    return {"images": images, "labels": labels, "conditions": conditions, "foreign": foreign,
            "foreign_kinds": kinds}


@torch.inference_mode()
def measure(model, images: Tensor, method: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Encode and decode ``images`` in batches: ``{"q", "res" (one per batch), "features", "checks"}``
    (``checks``: the fixed checks of :func:`~vsa_vision.trust.trust_checks`, None where there are none)."""
    qs, results, feats, checks = [], [], [], []
    device = model.device
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        q = model(x.to(device))
        res = model.decode(q, method)
        qs.append(q.cpu())
        results.append(res)
        f, c = trust_checks(model.schema, x, q, res)
        feats.append(f)
        checks.append(c)
    both = torch.cat(checks) if checks and checks[0] is not None else None
    return {"q": torch.cat(qs), "res": results, "features": torch.cat(feats), "checks": both}


def answers_right(res: Any, labels: Tensor) -> Tensor:
    """Per problem ``[B]`` bool: the whole answer right, every attribute of a ``Decomposition`` against
    labels ``[B, K]``, or the set of a ``SetDecomposition`` (count included) against object slots
    ``[B, M, K]`` (:func:`vsa_vision.multi.set_hits`)."""
    if isinstance(res, SetDecomposition):
        from .multi import set_hits

        return set_hits(res, labels.cpu())[0]
    return (res.indices.cpu() == labels.cpu()).all(1)


def _right(results: Sequence[Any], labels: Tensor) -> tuple[Tensor, Tensor | None, list[Tensor] | None]:
    """(whole answer right ``[B]``, per attribute ``[B, K]`` or None, per found object or None)."""
    if isinstance(results[0], SetDecomposition):
        whole, per_object, start = [], [], 0
        for res in results:
            lab = labels[start:start + len(res)]
            start += len(res)
            truth = [row[(row >= 0).all(-1)] for row in lab]
            whole.append(answers_right(res, lab))
            for found, t in zip(res.objects, truth):
                per_object.append((found.cpu()[:, None, :] == t[None]).all(-1).any(-1) if len(found)
                                  else torch.zeros(0, dtype=torch.bool))
        return torch.cat(whole), None, per_object
    idx = torch.cat([r.indices.cpu() for r in results])
    return (idx == labels).all(1), idx == labels, None


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def _logistic(x: np.ndarray, y: np.ndarray, balanced: bool = False, degree: int = 1) -> dict[str, Any]:
    """A logistic rule (scikit-learn) on standardised features, expanded to ``degree``
    (:func:`~vsa_vision.trust.expand`)."""
    from sklearn.linear_model import LogisticRegression

    from .trust import expand

    mean, scale = _standardise(x)
    z = expand(torch.from_numpy((x - mean) / scale), degree).numpy()
    if len(np.unique(y)) < 2:  # one class only: a constant rule
        return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": [0.0] * z.shape[1],
                "intercept": 8.0 if y.all() else -8.0, "degree": degree}
    lr = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced" if balanced else None)
    lr.fit(z, y)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]), "degree": degree}


def _calibrate(part: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Isotonic regression of ``y`` on the rule's logit (scikit-learn), stored as its breakpoints."""
    from sklearn.isotonic import IsotonicRegression

    from .trust import _logit

    z = _logit(part, torch.from_numpy(x)).numpy()
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y.astype(np.float64))
    return {**part, "iso_x": iso.X_thresholds_.tolist(), "iso_y": iso.y_thresholds_.tolist()}


def _fit_calibrated(x: np.ndarray, y: np.ndarray, half: np.ndarray) -> dict[str, Any]:
    return _calibrate(_logistic(x[half], y[half]), x[~half], y[~half])


def fit_trust(model, method: str | None = None, n_scenes: int = 6000, n_foreign: int = 3000, seed: int = 7,
              batch_size: int = 256, clean_keep: float = 0.999, data_dir: str | None = None,
              right_keep: float = 0.99, known_from: str = "scene") -> dict[str, Any]:
    """Fit the rules of :class:`~vsa_vision.trust.TrustRule` for ``model`` (a ``VSAModel`` or
    ``MultiVSAModel``) with its head ``method``; returns the record to store in the checkpoint.

    Half the draws fit the logistic rules, the other half calibrates them (isotonic) and sets the
    threshold of ``known`` (:func:`_threshold`). ``data_dir``: fit on that dataset's val images (a
    user's own) instead of renders.

    ``known_from``: what the rule of ``known`` learns to accept against the foreign inputs: ``"scene"``
    (every calibration scene, clean or degraded) or ``"right"`` (the scenes the model reads right). A
    model that reads degraded scenes poorly needs ``"right"``: taught to accept its misread degraded
    scenes, the rule cannot tell them from noise and photographs (the clutter model's answers are
    exact bundles of codewords whatever the input, so only the image features separate them), and
    the threshold that refuses 99.8% of plain foreign inputs then refuses every scene
    (``docs/BENCHMARKS.md``, cluttered scenes).

    The answers the fixed checks refuse (:func:`~vsa_vision.scene_checks.refused`: unknown with
    probability 0 whatever the rule says) are left out of the fit, and the foreign inputs they refuse
    count as rejected when the threshold is set; where they leave fewer than :data:`MIN_FIT` scenes
    (or a tenth), every answer is used."""
    n_scenes, n_foreign = check_int("n_scenes", n_scenes, 20), check_int("n_foreign", n_foreign, 14)
    check_choice("known_from", known_from, KNOWN_FROM)
    data = calibration_set(model.schema, n_scenes, n_foreign, seed, data_dir)
    scenes = measure(model, data["images"], method, batch_size)
    foreign = measure(model, data["foreign"], method, batch_size)
    xs, xf = scenes["features"].numpy(), foreign["features"].numpy()
    rng = np.random.default_rng(seed)
    half_s, half_f = rng.random(len(xs)) < 0.5, rng.random(len(xf)) < 0.5
    # the answers the fixed checks refuse are unknown with probability 0 whatever the rule says: the rule
    # is fitted on the others, and a refused foreign input counts as rejected when the threshold is set
    # (all of them where the checks leave too few to fit on: a model that reads nothing, untrained)
    ok_s, ok_f = (np.ones(len(x), dtype=bool) if m["checks"] is None else ~refused(m["checks"]).numpy()
                  for x, m in ((xs, scenes), (xf, foreign)))
    if ok_s.sum() < max(MIN_FIT, len(ok_s) // 10):
        ok_s, ok_f = np.ones(len(xs), dtype=bool), np.ones(len(xf), dtype=bool)
    whole, per_attr, per_object = _right(scenes["res"], data["labels"])
    fit_s, fit_f = half_s & ok_s, half_f & ok_f
    positive = np.ones(fit_s.sum()) if known_from == "scene" else whole.numpy()[fit_s].astype(np.float64)
    x_known = np.concatenate([xs[fit_s], xf[fit_f]])
    y_known = np.concatenate([positive, np.zeros(fit_f.sum())])
    known = _logistic(x_known, y_known, balanced=True, degree=2)
    known["known_from"] = known_from
    from .trust import _logit

    clean = np.array([c == "clean" for c in data["conditions"]])
    plain = np.isin(np.array(data["foreign_kinds"]), PLAIN_FOREIGN)
    held_s = ~half_s & ok_s
    score_s = _logit(known, torch.from_numpy(xs[held_s])).numpy()
    score_f = np.where(ok_f[~half_f], _logit(known, torch.from_numpy(xf[~half_f])).numpy(), -np.inf)
    known.update(_threshold(score_s[clean[held_s]], score_s[whole.numpy()[held_s]], score_f,
                            score_f[plain[~half_f]], clean_keep, right_keep))
    record: dict[str, Any] = {
        "version": RECORD_VERSION, "method": method or model.hparams.method, "seed": int(seed),
        "n_scenes": n_scenes, "n_foreign": n_foreign,
        "features": list(SET_FEATURES if per_object is not None else FEATURES if model.schema.renderable
                         else VECTOR_FEATURES),
        "known": known, "probability": _fit_calibrated(xs[ok_s], whole.numpy()[ok_s], half_s[ok_s])}
    if per_attr is not None:
        margins = torch.cat([r.margin.double().cpu() for r in scenes["res"]]).numpy()
        record["attributes"] = [_fit_calibrated(np.concatenate([margins[ok_s, k:k + 1], xs[ok_s]], 1),
                                                per_attr[ok_s, k].numpy(), half_s[ok_s])
                                for k in range(per_attr.shape[1])]
    else:
        feats = [f for r, chunk in zip(scenes["res"], _chunks(scenes["features"], scenes["res"]))
                 for f in object_features(r, chunk)]
        kept = [i for i in range(len(feats)) if ok_s[i]]
        halves = np.concatenate([np.full(len(feats[i]), half_s[i]) for i in kept])
        record["objects"] = _fit_calibrated(torch.cat([feats[i] for i in kept]).numpy(),
                                            torch.cat([per_object[i] for i in kept]).numpy(), halves)
        record["object_features"] = list(OBJECT_FEATURES)
    return record


#: the fewest calibration scenes the fixed checks must leave for the rules to be fitted on those alone
MIN_FIT = 20
#: what the rule of ``known`` is taught to accept (:func:`fit_trust`)
KNOWN_FROM = ("scene", "right")
#: the foreign kinds that look like no scene at all, which ``known`` must refuse whatever else it keeps
PLAIN_FOREIGN = ("blank", "noise", "photo", "inverted")
#: the least share of every foreign input ``known`` refuses on the calibration draws, whatever it keeps: an
#: object in a colour off the palette looks much like a palette colour after JPEG compression, so a
#: higher floor costs the degraded scenes read right (on the default model's measurement draws, with
#: 0.97 and 98% of scenes read right kept, it knew 94% of the JPEG quality-30 images it read right, with
#: 0.93 and 99% all of them; docs/BENCHMARKS.md, knowing when not to answer)
FOREIGN_REJECT = 0.93


def _threshold(clean: np.ndarray, right: np.ndarray, foreign: np.ndarray, plain: np.ndarray, clean_keep: float,
               right_keep: float, reject: float = 0.998, reject_any: float = FOREIGN_REJECT) -> dict[str, float]:
    """The threshold of ``known`` on the calibration half's scores: low enough to keep ``clean_keep``
    of the clean scenes and ``right_keep`` of every scene answered right (clean, degraded, drawn by
    another renderer: an image read right is known), but never below the score that rejects
    ``reject`` of the plain foreign inputs (blank, noise, photographs, inverted) nor the one that
    rejects ``reject_any`` of every foreign input (unknown shapes and colours, too many objects too).
    Above the score that rejects ``reject`` of every foreign input, it sits midway between the two."""
    def q(x: np.ndarray, p: float, fallback: float) -> float:
        return float(np.quantile(x, p)) if len(x) else fallback

    keep = min(q(clean, 1.0 - clean_keep, 0.0), q(right, 1.0 - right_keep, 0.0))
    floor = max(q(plain, reject, -np.inf), q(foreign, reject_any, -np.inf))
    lo = q(foreign, reject, floor)
    t = (keep + lo) / 2 if keep > lo else max(keep, floor)
    return {"threshold": t, "clean_score": q(clean, 1.0 - clean_keep, 0.0),
            "right_score": q(right, 1.0 - right_keep, 0.0), "foreign_score": lo, "plain_foreign_score": floor}


def _chunks(features: Tensor, results: Sequence[Any]) -> list[Tensor]:
    out, start = [], 0
    for r in results:
        out.append(features[start:start + len(r)])
        start += len(r)
    return out


def expected_calibration_error(prob: np.ndarray, right: np.ndarray, bins: int = 15) -> float:
    """The mean over equal-width probability bins of |accuracy - mean probability|, weighted by the
    bin's share of the answers."""
    prob, right = np.asarray(prob, dtype=np.float64), np.asarray(right, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(right[m].mean() - prob[m].mean())
    return float(total)


def evaluate_trust(model, method: str | None = None, n_scenes: int = 3000, n_foreign: int = 1400, seed: int = 101,
                   batch_size: int = 256, data_dir: str | None = None) -> dict[str, Any]:
    """Measure ``model``'s stored rule on fresh draws (``seed`` other than the fit's): known rates of
    clean scenes (test split), of degraded ones and of every foreign kind, AUROC, and calibration
    (``ece`` on the degraded scenes, ``ece_clean`` on the clean ones). ``data_dir``: the dataset's own
    test images (all of them) instead of renders."""
    from sklearn.metrics import roc_auc_score, roc_curve

    rule = TrustRule(model.trust)
    if data_dir is None:
        clean_set = RenderedScenes(model.schema, n_scenes, seed=seed, split="test", cache=True)
        clean_images, clean_labels = clean_set._images, clean_set.indices
    else:
        clean_images, clean_labels = dataset_images(data_dir, "test", model.schema)
    degraded, conditions = degrade_mixed(clean_images, seed + 1, clean_share=0.2)
    foreign, kinds = foreign_images(model.schema, n_foreign, seed=seed,
                                    scenes=clean_images if data_dir is not None else None)
    m_clean = measure(model, clean_images, method, batch_size)
    m_deg = measure(model, degraded, method, batch_size)
    m_for = measure(model, foreign, method, batch_size)
    s_clean, s_deg, s_for = (rule.known_score(m["features"], m["checks"]).numpy() for m in (m_clean, m_deg, m_for))
    aliased = _aliased_report(model, rule, clean_labels, method, batch_size) if data_dir is None else {}
    t = float(model.trust["known"]["threshold"])
    y = np.concatenate([np.ones(len(s_clean)), np.zeros(len(s_for))])
    score = np.concatenate([s_clean, s_for])
    fpr, tpr, _ = roc_curve(y, score)
    kinds_arr = np.array(kinds)
    whole, _, _ = _right(m_deg["res"], clean_labels)
    prob = rule.probability(m_deg["features"], m_deg["checks"]).numpy()
    clean_right, _, _ = _right(m_clean["res"], clean_labels)
    prob_clean = rule.probability(m_clean["features"], m_clean["checks"]).numpy()
    report: dict[str, Any] = {
        "seed": seed, "method": method or model.hparams.method, "threshold": t,
        "known_clean": float((s_clean >= t).mean()), "known_degraded": float((s_deg >= t).mean()),
        "unknown_foreign": float((s_for < t).mean()),
        "known_right_degraded": float((s_deg >= t)[whole.numpy()].mean()) if whole.any() else 0.0,
        "unknown_by_kind": {k: float((s_for[kinds_arr == k] < t).mean()) for k in FOREIGN_KINDS
                            if (kinds_arr == k).any()},
        "auroc": float(roc_auc_score(y, score)), "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "accuracy_clean": float(clean_right.float().mean()), "accuracy_degraded": float(whole.float().mean()),
        "ece": expected_calibration_error(prob, whole.numpy()),
        "ece_clean": expected_calibration_error(prob_clean, clean_right.numpy()),
        "reliability": {"probability": prob.tolist(), "right": whole.numpy().astype(int).tolist()},
        "known_by_condition": _by_condition(conditions, s_deg >= t), **aliased}
    return report


def _aliased_report(model, rule: TrustRule, labels: Tensor, method: str | None, batch_size: int) -> dict[str, Any]:
    """The test scenes drawn again without anti-aliasing (a change of renderer): accuracy, the share
    called known, ECE, and the wrong answers called known with probability >= 0.9."""
    from .scenes.render import Renderer

    drawn = torch.from_numpy(Renderer(model.schema, supersample=1).render_batch(labels.numpy())).permute(0, 3, 1, 2)
    m = measure(model, drawn.contiguous(), method, batch_size)
    right, _, _ = _right(m["res"], labels)
    known = rule.known(m["features"], m["checks"]).numpy()
    prob = rule.probability(m["features"], m["checks"]).numpy()
    wrong = ~right.numpy()
    return {"accuracy_aliased": float(right.float().mean()), "known_aliased": float(known.mean()),
            "ece_aliased": expected_calibration_error(prob, right.numpy()),
            "aliased_wrong_known_confident": int((wrong & known & (prob >= 0.9)).sum())}


def _by_condition(conditions: Sequence[str], flags: np.ndarray) -> dict[str, float]:
    arr = np.array(conditions)
    return {c: float(flags[arr == c].mean()) for c in sorted(set(conditions))}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its per-answer arrays (what a checkpoint keeps beside its rule)."""
    return {k: v for k, v in report.items() if k not in ("roc", "reliability")}


def trust_figures(report: dict[str, Any], roc_path: str, reliability_path: str, title: str = "") -> None:
    """The ROC curve of ``known`` (scenes against foreign inputs) and the reliability diagram of
    ``probability`` on degraded scenes (``sklearn.calibration.CalibrationDisplay``), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot(report["roc"]["fpr"], report["roc"]["tpr"], lw=2)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("foreign inputs called known (FPR)")
    ax.set_ylabel("clean scenes called known (TPR)")
    ax.set_title(f"{title} known: AUROC {report['auroc']:.4f}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(roc_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    rel = report["reliability"]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    CalibrationDisplay.from_predictions(np.asarray(rel["right"]), np.asarray(rel["probability"]), n_bins=10,
                                        strategy="quantile", ax=ax, name="probability")
    ax.set_title(f"{title} degraded scenes: ECE {report['ece']:.4f}", fontsize=9)
    fig.tight_layout()
    with atomic_path(reliability_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
