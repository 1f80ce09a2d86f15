"""The LightningModule: encoder + fixed scene codebooks + loss + a decomposer head, with metrics.

The encoder maps an image to one vector ``q [D]`` meant to equal the bound vector of the image's
attribute codewords; the head (any registered decomposer, by name) decodes only that vector. Test
decodes with every head in ``test_methods`` on the same outputs: the gap between a head and brute
force is the head's own error, the gap between brute force and 100% the encoder's.

Validation cost follows the encoder: an iterative head spends its whole budget on vectors it cannot
explain, so while the encoder is poor (the previous validation's mean cosine to the target below
``val_head_cos``, and in Lightning's sanity check) validation decodes by exhaustive search
(``early_val_method``, a few ms an image at any encoder quality), and with the head from then on.
``val/acc_*`` is the accuracy of the decoder used, ``val/decoded_by_head`` says which (1 the head,
0 exhaustive search: the encoder's own accuracy, the most any head could reach).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_float, check_int
from .decoders import DECODER_KINDS, make_decoder
from .decompose import Decomposition, build_method, parse_method, with_options
from .decompose.registry import available_decomposers, capabilities
from .encoder import Encoder, reader_arguments, to_float_images
from .scenes.schema import Schema, load_schema
from .schedules import TimedOneCycle
from .vsa import Codebooks
from .vsa.record import check_codebook_record, codebook_record  # noqa: F401 (public here too)

LOSSES = ("cosine", "contrastive", "cosine+contrastive", "factor_cosine", "factor_contrastive")
SCHEDULES = ("onecycle", "onecycle_time", "cosine", "constant")
DEFAULT_TEST_METHODS = ("diffusion", "resonator", "attention_resonator", "stochastic_resonator", "brute_force")
CODEBOOKS_KEY = "vsa_vision_codebooks"  # a Lightning checkpoint's record of its codebooks (codebook_record)
VAL_COS_KEY = "vsa_vision_last_val_cos"  # the last validation's mean cosine, which picks the validation decoder
TRUST_KEY = "vsa_vision_trust"  # a checkpoint's fitted abstention and calibration rules (vsa_vision.trust)


def schema_codebooks(schema: Schema, dim: int, seed: int = 0) -> Codebooks:
    """The random bipolar codebooks of a schema's attributes, value labels included (drawn on CPU)."""
    return Codebooks.random(schema.factors(), dim=dim, seed=seed)


def _register_codebooks(module: nn.Module, tensors: Sequence[Tensor]) -> None:
    """Each factor's codebook as the buffer ``codebook_{k}`` (moves with the module, saved in its state dict)."""
    for k, t in enumerate(tensors):
        module.register_buffer(f"codebook_{k}", t)


def _buffered_codebooks(module: nn.Module, names: Sequence[str], labels: Any) -> Codebooks:
    """The :class:`Codebooks` held in ``module``'s ``codebook_{k}`` buffers."""
    ts = {n: getattr(module, f"codebook_{k}") for k, n in enumerate(names)}
    return Codebooks.from_tensors(ts, labels=labels, check_bipolar=False)


class DecomposerHead(nn.Module):
    """Attach a decomposer to any encoder: ``head(vectors [B, D]) -> Decomposition``.

    ``method`` is a registered name or a spec ``"name:option=value,..."``; keyword ``options`` (e.g.
    ``iterations=300``) apply where the spec does not set them. The codebooks are buffers, so the
    head moves with ``.to(device)`` and is saved in a state dict."""

    def __init__(self, codebooks: Codebooks, method: str = "diffusion", **options: Any) -> None:
        super().__init__()
        if not isinstance(codebooks, Codebooks):
            raise TypeError(f"codebooks: expected Codebooks, got {type(codebooks).__name__}")
        self.names, self.labels = codebooks.names, codebooks.labels
        _register_codebooks(self, [t.detach().clone() for t in codebooks.tensors])
        self.method_spec = method
        self.options = dict(options)
        self.decomposer = build_method(method, **options)

    @property
    def codebooks(self) -> Codebooks:
        return _buffered_codebooks(self, self.names, dict(zip(self.names, self.labels)))

    def forward(self, vectors: Tensor) -> Decomposition:
        return self.decomposer.decompose(vectors, self.codebooks)


class VSAModel(pl.LightningModule):
    """Encoder trained so that its output is the bound vector of the image's attributes.

    Args:
        schema: the scene schema (a built-in name, a JSON path or a dict); stored resolved in the
            checkpoint, so a checkpoint is self-contained.
        dim, codebook_seed: the codebooks (random bipolar, drawn on CPU from the seed; buffers of
            the module, so every DDP rank and every checkpoint holds the same ones).
        backbone, head, width, features, norm: see :class:`vsa_vision.encoder.Encoder`; readers: the
            attributes read each by a network of its own (:class:`~vsa_vision.encoder.AttributeReader`),
            or ``"auto"``: every attribute but the positions (:func:`~vsa_vision.encoder.reader_names`);
            colour_blind: those of them read from brightness alone, or ``"auto"``: all but the colours;
            reader_pad: pixels of edge the readers add around the picture (objects at the edge read as inside);
            reader_turn: degrees: in training, the readers of all but a turn (where an attribute is one) see
            pictures turned up to this much.
        loss: ``cosine`` (1 - cos(q, target)), ``contrastive`` (per factor, cross-entropy of the
            factor's unbinding estimate ``q * target * c_k`` against all of its codewords, scaled by
            ``temperature``), or their sum; ``factor_cosine`` / ``factor_contrastive`` add a term on
            the factorised head's K vectors (1 - cos to the true codeword, or cross-entropy against the
            factor's codebook), a signal that does not pass through the other factors' product.
        lr, weight_decay, schedule: AdamW and ``onecycle`` / ``cosine`` / ``constant``, or
            ``onecycle_time`` (one cycle over ``max_epochs`` or the trainer's ``max_time``, whichever
            ends first: :mod:`vsa_vision.schedules`).
        method, iterations, method_options: the head for validation and ``predict``; test_methods:
            the heads compared in ``test`` on the same encoder outputs.
        val_head_cos, early_val_method: validation decodes with ``early_val_method`` (exhaustive
            search) in the sanity check and while the previous validation's mean cosine to the target
            is below ``val_head_cos``, then with the head (None: always the head, but for the sanity check).
        heldout_method: the decoder of the optional held-out validation loader (default exhaustive
            search: it follows the encoder's compositional generalisation at a small fixed cost).
        channels_last: NHWC memory format (faster convolutions on CPU).
        silhouette: give the encoder the objects' filled silhouette (the same for an outlined and a
            filled shape) and the holes inside it (only outlined shapes have them) as two more input
            channels, so that shape and fill generalise to unseen shape x fill combinations.
        denoise_masks: compute those channels from a denoised image (a 3 x 3 median and a light blur;
            :func:`~vsa_vision.encoder.object_masks`), for encoders meant to read noisy and compressed
            images; checkpoints trained without it keep the plain masks.
        init_from: a checkpoint (path or shipped name) whose weights start a fit (fine-tuning: the
            optimiser and schedule start afresh, unlike ``--ckpt_path``). With this model's schema,
            dimension and codebooks, every weight; with another schema (a user's own attributes), the
            backbone's weights only (transfer: the factor heads start afresh), which needs the same
            backbone, width and input channels. Read at the start of ``fit`` only.
        decoder: the width of a learned image decoder trained beside the encoder (value indices to
            image, its loss on the first ``decoder_batch`` images of every training batch, weighted by
            ``decoder_weight``); 0: none. ``decoder_kind``: ``"grid"`` or ``"placed"``
            (:mod:`vsa_vision.decoders`). It draws edits the built-in renderer cannot (one object a scene).
    """

    def __init__(self, schema: str | dict[str, Any] = "default", dim: int = 1024, codebook_seed: int = 0,
                 backbone: str = "small_cnn", head: str = "factorised", width: int = 32, features: int = 256,
                 norm: str = "group", loss: str = "factor_contrastive", temperature: float = 16.0,
                 lr: float = 2e-3, weight_decay: float = 0.0,
                 schedule: str = "onecycle", method: str = "diffusion", iterations: int = 1000,
                 method_options: dict[str, Any] | None = None,
                 test_methods: Sequence[str] = DEFAULT_TEST_METHODS, channels_last: bool = True,
                 heldout_method: str = "brute_force", silhouette: bool = False,
                 val_head_cos: float | None = 0.9, early_val_method: str = "brute_force",
                 denoise_masks: bool = False, init_from: str | None = None, decoder: int = 0,
                 decoder_batch: int = 32, decoder_weight: float = 1.0, decoder_kind: str = "grid",
                 readers: str | Sequence[str] | None = None, colour_blind: str | Sequence[str] | None = None,
                 reader_pad: int = 0, reader_turn: float = 0.0) -> None:
        super().__init__()
        self.schema = load_schema(schema)
        check_int("decoder", decoder, 0), check_int("decoder_batch", decoder_batch, 1)
        check_float("decoder_weight", decoder_weight, 0.0), check_choice("decoder_kind", decoder_kind, DECODER_KINDS)
        if decoder and self.schema.max_objects > 1:
            raise ValueError("decoder: the learned image decoder draws scenes of one object; schema "
                             f"{self.schema.name!r} holds up to {self.schema.max_objects}")
        check_choice("loss", loss, LOSSES)
        check_choice("schedule", schedule, SCHEDULES)
        check_float("val_head_cos", val_head_cos, -1.0, 1.0, allow_none=True)
        for spec in [method, heldout_method, early_val_method, *test_methods]:
            name, _ = parse_method(spec)
            if name not in available_decomposers():
                raise ValueError(f"method {spec!r}: unknown decomposer; available: {available_decomposers()}")
        self.save_hyperparameters()
        self.hparams["schema"] = self.schema.to_dict()
        self.hparams["test_methods"] = list(test_methods)
        cb = schema_codebooks(self.schema, dim, codebook_seed)
        self.factor_names = cb.names
        _register_codebooks(self, cb.tensors)
        self.encoder = Encoder(dim=dim, num_factors=cb.num_factors, backbone=backbone, head=head,
                               image_size=self.schema.image_size, width=width, features=features, norm=norm,
                               silhouette=silhouette, denoise_masks=denoise_masks,
                               **reader_arguments(self.schema, cb, readers, colour_blind, reader_pad, reader_turn))
        if channels_last:
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
        self.decoder = make_decoder(decoder_kind, self.schema.sizes, self.schema.image_size, decoder) if decoder \
            else None
        self._heads: dict[str, Any] = {}
        self._test: dict[tuple[int, str], dict[str, Any]] = {}
        self.test_report: dict[str, Any] | None = None
        self.last_val_cos: float | None = None  # the previous validation's mean cosine to the target
        self._val_cos = torch.zeros(2, dtype=torch.float64)  # this validation's sum of cosines, count
        self._val_by_head = False
        #: the fitted rules of known / probability (:func:`vsa_vision.trust_fit.fit_trust`), or None
        self.trust: dict[str, Any] | None = None

    # -- codebooks and heads -------------------------------------------------------------------

    @property
    def codebooks(self) -> Codebooks:
        return _buffered_codebooks(self, self.factor_names, self.schema.factors())

    def _codebook(self, k: int) -> Tensor:
        """Factor ``k``'s codebook ``[n_k, D]`` (the buffer itself)."""
        return getattr(self, f"codebook_{k}")

    def head(self, method: str | None = None):
        """The decomposer for ``method`` (default: the model's), built once per spec."""
        if (spec := self.resolve_method(method)) not in self._heads:
            self._heads[spec] = build_method(spec, iterations=self.hparams.iterations, seed=0, **self.own_options(spec))
        return self._heads[spec]

    def own_options(self, spec: str) -> dict[str, Any]:
        """``method_options``, which apply to the model's own method's plain spec only; {} for any other."""
        return dict(self.hparams.method_options or {}) if spec == self.hparams.method else {}

    def resolve_method(self, method: str | None = None) -> str:
        """The spec of head ``method`` (default: the model's); ``"auto"`` wraps the model's own method."""
        spec, own = method or self.hparams.method, self.hparams.method
        if parse_method(spec)[0] != "auto" or "method" in parse_method(spec)[1]:
            return spec
        if not capabilities(own).iterative:  # the model's own head is already a lookup
            return own
        return with_options(spec, method=with_options(own, **(self.hparams.method_options or {})))

    def targets(self, labels: Tensor) -> Tensor:
        return self.codebooks.bind_indices(labels)

    # -- forward -------------------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Images (``uint8`` or float in [0, 1], ``[B, 3, H, W]``) -> vectors ``[B, D]``."""
        return self.encode(images)[0]

    def decode(self, vectors: Tensor, method: str | None = None) -> Decomposition:
        return self.head(method).decompose(vectors.float(), self.codebooks.to(device=vectors.device))

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(vectors ``[B, D]``, factor vectors ``[B, K, D]`` of a factorised head or None)."""
        x = to_float_images(images)
        side = self.schema.image_size
        if x.shape[-2:] != (side, side):
            raise ValueError(f"images: expected {side} x {side} pixels (the schema's image size), "
                             f"got {x.shape[-2]} x {x.shape[-1]}")
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder.forward_with_factors(x)

    def loss(self, q: Tensor, labels: Tensor, factors: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(loss, cosine to the target per image). ``factors``: the head's K vectors, for factor_* losses."""
        target = self.targets(labels)
        cos = F.cosine_similarity(q, target, dim=-1)
        kind = self.hparams.loss
        total = q.new_zeros(())
        if kind in ("cosine", "cosine+contrastive", "factor_cosine", "factor_contrastive"):
            total = total + (1 - cos).mean()
        if kind.startswith("factor_"):
            if factors is None:
                raise ValueError(f"loss {kind!r} needs the factorised head (head='factorised')")
            total = total + self._factor_loss(factors, labels, contrastive=kind == "factor_contrastive")
        if kind in ("contrastive", "cosine+contrastive"):
            total = total + self._unbinding_contrastive_loss(q, target, labels)
        return total, cos

    def _factor_loss(self, factors: Tensor, labels: Tensor, contrastive: bool) -> Tensor:
        """Mean over factors of a term on the head's factor vectors ``[B, K, D]``: 1 - cos to the true
        codeword, or (``contrastive``) cross-entropy against the factor's codebook."""
        term = factors.new_zeros(())
        for k in range(len(self.factor_names)):  # a loop over K factors, not over problems
            C = self._codebook(k)
            if contrastive:
                fk = F.normalize(factors[:, k], dim=-1)
                logits = self.hparams.temperature * (fk @ C.T) / math.sqrt(C.shape[-1])
                term = term + F.cross_entropy(logits, labels[:, k])
            else:
                term = term + (1 - F.cosine_similarity(factors[:, k], C[labels[:, k]], dim=-1)).mean()
        return term / len(self.factor_names)

    def _unbinding_contrastive_loss(self, q: Tensor, target: Tensor, labels: Tensor) -> Tensor:
        """Mean over factors of the cross-entropy of factor k's unbinding estimate ``q * target * c_k``
        against all of its codewords."""
        base = q * target  # unbinding all factors: q * target * c_k is factor k's estimate
        norm = base.norm(dim=-1, keepdim=True).clamp_min(1e-6) * math.sqrt(q.shape[-1])
        ce = q.new_zeros(())
        for k in range(len(self.factor_names)):  # a loop over K factors, not over problems
            C = self._codebook(k)
            est = base * C[labels[:, k]]
            logits = self.hparams.temperature * (est @ C.T) / norm
            ce = ce + F.cross_entropy(logits, labels[:, k])
        return ce / len(self.factor_names)

    # -- Lightning hooks -----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.get("init_from") and not getattr(self, "_initialised", False):
            self._init_weights(self.hparams.init_from)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        other = getattr(dm, "schema", None)
        if isinstance(other, Schema) and other.to_dict() != self.schema.to_dict():
            raise ValueError(f"the data's schema {other.name!r} ({dict(zip(other.names, other.sizes))}) does not "
                             f"match the model's {self.schema.name!r} "
                             f"({dict(zip(self.schema.names, self.schema.sizes))})")

    def _init_weights(self, source: str) -> None:
        """Start from the weights of checkpoint ``source`` (see ``init_from``)."""
        from .checkpoint import load_model

        other = load_model(source)
        if other.schema.to_dict() != self.schema.to_dict():
            self._init_backbone(source, other)
            return
        if type(other) is not type(self):
            raise ValueError(f"init_from {source!r}: a {type(other).__name__} of schema {other.schema.name!r}, "
                             f"not a {type(self).__name__} of {self.schema.name!r}")
        check_codebook_record(codebook_record(other.codebooks), self.codebooks)
        missing, unexpected = self.load_state_dict(other.state_dict(), strict=False)
        if missing or unexpected:
            raise ValueError(f"init_from {source!r}: its weights do not fit this model (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        self._initialised = True

    def _init_backbone(self, source: str, other: nn.Module) -> None:
        """Transfer: this model's backbone starts from ``other``'s (a model of another schema); the
        factor heads and any decoder start afresh."""
        mine = self.encoder.backbone.state_dict()
        theirs = other.encoder.backbone.state_dict()
        bad = sorted(k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape)
        if bad or set(theirs) - set(mine):
            raise ValueError(f"init_from {source!r}: its backbone does not fit this model's (backbone, width, "
                             f"features and silhouette must match; first differences: "
                             f"{(bad or sorted(set(theirs) - set(mine)))[:3]})")
        self.encoder.backbone.load_state_dict(theirs)
        self._initialised = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for k, name in enumerate(self.factor_names):
            mine = self._codebook(k)
            theirs = state.get(f"codebook_{k}")
            if theirs is None or theirs.shape != mine.shape or not torch.equal(theirs.to(mine.device), mine):
                raise ValueError(f"checkpoint: its codebook for {name!r} differs from this model's "
                                 f"(dim {self.hparams.dim}, codebook_seed {self.hparams.codebook_seed}); "
                                 "it was trained with other codebooks or another schema")
        if checkpoint.get(CODEBOOKS_KEY) is not None:  # checkpoints written before the record have none
            check_codebook_record(checkpoint[CODEBOOKS_KEY], self.codebooks)

        if checkpoint.get(VAL_COS_KEY) is not None:
            self.last_val_cos = float(checkpoint[VAL_COS_KEY])
        if checkpoint.get(TRUST_KEY) is not None:
            self.trust = dict(checkpoint[TRUST_KEY])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CODEBOOKS_KEY] = codebook_record(self.codebooks)
        if self.trust is not None:
            checkpoint[TRUST_KEY] = self.trust
        checkpoint[VAL_COS_KEY] = self.last_val_cos  # a resumed run picks the same validation decoder

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        q, factors = self.encode(images)
        loss, cos = self.loss(q, labels, factors)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/cos", cos.mean(), prog_bar=True, batch_size=len(labels))
        if self.decoder is not None:
            l1 = self.decoder_loss(images, labels)
            self.log("train/decoder_l1", l1, batch_size=len(labels))
            loss = loss + self.hparams.decoder_weight * l1
        return loss

    def decoder_loss(self, images: Tensor, labels: Tensor) -> Tensor:
        """The learned decoder's loss (its weighted mean absolute error) on the first ``decoder_batch`` images."""
        m = min(len(labels), self.hparams.decoder_batch)
        return self.decoder.loss(labels[:m], to_float_images(images[:m]))

    def _evaluate(self, q: Tensor, labels: Tensor, method: str | None) -> dict[str, Tensor | float]:
        if q.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = self.decode(q, method)
        if q.is_cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        hit = res.indices.to(labels.device) == labels
        return {"hit": hit, "seconds": dt, "indices": res.indices}

    def val_uses_head(self) -> bool:
        """Whether this validation decodes with the head: not in the sanity check, and once the
        previous validation's mean cosine reached ``val_head_cos`` (the same on every rank)."""
        if self._trainer is not None and self.trainer.sanity_checking:
            return False
        threshold = self.hparams.val_head_cos
        return threshold is None or (self.last_val_cos is not None and self.last_val_cos >= threshold)

    def on_validation_epoch_start(self) -> None:
        self._val_by_head = self.val_uses_head()
        self._val_cos = torch.zeros(2, dtype=torch.float64, device=self.device)

    def on_validation_epoch_end(self) -> None:
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        total = self.all_gather(self._val_cos)
        total = total.reshape(-1, 2).sum(0)
        if total[1] > 0:
            self.last_val_cos = float(total[0] / total[1])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """The ``val`` split logs under ``val/`` (decoded with the head or, while the encoder is poor,
        by exhaustive search: :meth:`val_uses_head`); a second loader (held-out combinations, when
        the DataModule has one) logs its accuracy and cosine under ``val_heldout/``."""
        images, labels = batch
        q, factors = self.encode(images)
        n = len(labels)
        log = partial(self.log, batch_size=n, sync_dist=True, add_dataloader_idx=False)
        if dataloader_idx > 0:
            r = self._evaluate(q, labels, self.hparams.heldout_method)
            log("val_heldout/cos", F.cosine_similarity(q, self.targets(labels), dim=-1).mean())
            log("val_heldout/acc_all", r["hit"].all(-1).float().mean())
            return
        by_head = self._val_by_head
        r = self._evaluate(q, labels, None if by_head else self.hparams.early_val_method)
        loss, cos = self.loss(q, labels, factors)
        self._val_cos = self._val_cos.to(cos.device) + torch.stack([cos.double().sum(), cos.new_tensor(n).double()])
        log("val/loss", loss)
        log("val/cos", cos.mean())
        if self.decoder is not None:
            log("val/decoder_l1", self.decoder_loss(images, labels))
        log("val/acc_all", r["hit"].all(-1).float().mean(), prog_bar=True)
        self._log_val_details(log, r)
        log("val/decode_ms_per_image", 1e3 * r["seconds"] / n)
        log("val/decoded_by_head", float(by_head))

    def _log_val_details(self, log, r: dict[str, Any]) -> None:
        """Validation metrics beyond ``val/acc_all``: the accuracy of every attribute."""
        for k, name in enumerate(self.factor_names):
            log(f"val/acc_{name}", r["hit"][:, k].float().mean())

    def on_test_epoch_start(self) -> None:
        self._test = {}

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        q = self(images)
        cos = F.cosine_similarity(q, self.targets(labels), dim=-1)
        for method in self.hparams.test_methods:
            r = self._evaluate(q, labels, method)
            acc = self._test.setdefault((dataloader_idx, method), {
                "n": 0, "all": 0, "factor": torch.zeros(len(self.factor_names), dtype=torch.long), "seconds": 0.0,
                "cos": 0.0})
            acc["n"] += len(labels)
            acc["all"] += int(r["hit"].all(-1).sum())
            acc["factor"] += r["hit"].sum(0).cpu()
            acc["seconds"] += r["seconds"]
            acc["cos"] += float(cos.sum())
            if method == self.hparams.method:  # the model's own head: kept for the per-attribute metrics
                acc.setdefault("decoded", []).append(r["indices"].cpu())
                acc.setdefault("truth", []).append(labels.cpu())

    def on_test_epoch_end(self) -> None:
        from .metrics import attribute_metrics

        names = self.test_split_names()
        report: dict[str, Any] = {"schema": self.schema.name, "dim": self.hparams.dim,
                                  "iterations": self.hparams.iterations, "splits": {}}
        for (idx, method), acc in sorted(self._test.items(), key=lambda kv: kv[0][0]):
            vals = torch.tensor([acc["n"], acc["all"], *acc["factor"].tolist()], dtype=torch.float64,
                                device=self.device)
            extra = torch.tensor([acc["seconds"], acc["cos"]], dtype=torch.float64, device=self.device)
            if self.trainer.world_size > 1:
                vals = self.all_gather(vals).sum(0)
                extra = self.all_gather(extra).sum(0)
            n = float(vals[0])
            split = names[idx] if idx < len(names) else f"test{idx}"
            row = {"images": int(n), "acc_all": float(vals[1]) / n,
                   "acc": {f: float(v) / n for f, v in zip(self.factor_names, vals[2:])},
                   "mean_cos": float(extra[1]) / n, "decode_ms_per_image": 1e3 * float(extra[0]) / n}
            report["splits"].setdefault(split, {})[method] = row
            if acc.get("decoded") and self.trainer.world_size == 1:
                report.setdefault("attributes", {}).setdefault(split, {})[method] = attribute_metrics(
                    torch.cat(acc["decoded"]), torch.cat(acc["truth"]), self.schema.factors(), self.schema.ordinal)
            key = f"test_{split}/{method}"
            self.log(f"{key}/acc_all", row["acc_all"], add_dataloader_idx=False)
        self.test_report = report

    def test_split_names(self) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        return list(getattr(dm, "test_split_names", ["test"]))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        res = self.decode(self(images))
        conf = res.confidence.cpu().tolist()
        return [{"labels": lab, "confidence": dict(zip(self.factor_names, c))} for lab, c in zip(res.labels, conf)]

    def configure_optimizers(self):
        params = list(self.encoder.parameters()) + (list(self.decoder.parameters()) if self.decoder is not None else [])
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.schedule == "constant":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if self.hparams.schedule == "onecycle_time":  # one cycle over max_epochs or max_time, whichever ends first
            timer = next((c for c in self.trainer.callbacks if type(c).__name__ == "Timer"), None)
            seconds = timer.time_remaining() if timer is not None else None
            sched = TimedOneCycle(opt, total, seconds)
        elif self.hparams.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=total,
                                                        pct_start=0.15)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
