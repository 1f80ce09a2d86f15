"""The model for scenes of several objects: one output vector, the bundle of the objects' bound vectors.

``slots="dense"`` (:class:`~vsa_vision.dense.DenseSlotEncoder`, for fine position grids such as the
clutter schema's) reads each object, position included, at the location of a feature map that holds
its centre. ``slots="grid"`` (the default) has one object slot per cell of the schema's position grid
(:class:`GridSlotEncoder`), ordered by position: slot features from the cell's part of a feature
map and the global features, a factorised binding head shared by every slot, position factors of its
own row and column, and a presence gate ``p_s``. The output is ``q = sum_s p_s b_s``: a decomposer
reads only ``q``, by explaining away (:func:`vsa_vision.decompose.decompose_set`).

Training: per occupied slot (an object's cell), the factors' cross-entropy against their codebooks;
the presence gates' binary cross-entropy over every cell; and ``q`` against the scene's bundle
``sum_i prod_k c_{k, i_k}``, by cosine and by mean squared error (so that one object has amplitude
1, which the count estimate relies on).
Validation and test score a scene right when its set of objects is exactly right (``acc_all``), and
report the count's accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_choice, check_float, check_int
from .decompose import SetDecomposition, decompose_set
from .decompose.registry import capabilities, parse_method, with_options
from .encoder import SmallCNN, object_masks
from .model import DEFAULT_TEST_METHODS, VSAModel

__all__ = ["GridSlotEncoder", "MultiVSAModel", "set_hits"]

SLOTS = ("grid", "dense")


def _dense_encoder(schema: Any, dim: int, kx: int, ky: int, **options: Any):
    """A :class:`~vsa_vision.dense.DenseSlotEncoder` for a schema whose x / y values the built-in
    renderer places (their pixel centres locate each object for the training loss)."""
    import numpy as np

    from .dense import DenseSlotEncoder
    from .scenes.render import Renderer

    rows = np.zeros((max(schema.sizes[kx], schema.sizes[ky]), len(schema.sizes)), dtype=np.int64)
    rows[: schema.sizes[kx], kx] = np.arange(schema.sizes[kx])
    rows[: schema.sizes[ky], ky] = np.arange(schema.sizes[ky])
    centres = Renderer(schema).centres(rows)
    enc = DenseSlotEncoder(dim=dim, sizes=schema.sizes, x_pixels=centres[: schema.sizes[kx], 0].tolist(),
                           y_pixels=centres[: schema.sizes[ky], 1].tolist(), image_size=schema.image_size, **options)
    enc.set_position_factors(kx, ky)
    return enc


class GridSlotEncoder(nn.Module):
    """A slot for every cell of the schema's position grid, ordered by position (row-major in y, x).

    The small CNN's trunk gives a feature map, averaged over each grid cell, and a global feature
    vector (its full depth); each cell's slot features ``z_c`` come from both and a learned cell
    embedding. The non-position factors of a cell are ``tanh(W_k z_c)`` (one projection per factor,
    shared by the cells); its position factors are learned vectors of its own row and column. The
    presence gate is ``sigmoid(v . z_c)``, and the output ``q = sum_c gate_c prod_k f_{c,k}``.
    ``forward_with_factors`` returns ``(q, (factors [B, S, K, D], presence logits [B, S]))``."""

    def __init__(self, dim: int, sizes: Sequence[int], x_factor: int, y_factor: int, image_size: int = 96,
                 width: int = 32, features: int = 256, norm: str = "group", silhouette: bool = True,
                 hidden: int = 256, cell_stage: int = 3, denoise_masks: bool = False) -> None:
        super().__init__()
        self.dim, self.sizes, self.kx, self.ky = dim, tuple(sizes), x_factor, y_factor
        self.nx, self.ny = sizes[x_factor], sizes[y_factor]
        self.slots = self.nx * self.ny
        self.silhouette, self.denoise_masks = bool(silhouette), bool(denoise_masks)
        self.backbone = SmallCNN(image_size=image_size, width=width, features=features, norm=norm,
                                 in_channels=5 if self.silhouette else 3)
        self.cell_stage = cell_stage
        cell_channels = min(width * 2 ** (cell_stage - 1), width * 8)
        self.cell_embed = nn.Parameter(torch.randn(self.slots, 16) * 0.1)
        self.slot = nn.Sequential(nn.Linear(cell_channels + features + 16, hidden), nn.ReLU(inplace=True))
        self.other = [k for k in range(len(sizes)) if k not in (x_factor, y_factor)]
        self.factor = nn.Linear(hidden, len(self.other) * dim)
        self.pos_x = nn.Parameter(torch.randn(self.nx, dim))
        self.pos_y = nn.Parameter(torch.randn(self.ny, dim))
        self.presence = nn.Linear(hidden, 1)

    def _input(self, x: Tensor) -> Tensor:
        if self.silhouette:
            x = torch.cat([x, *object_masks(x, denoise=self.denoise_masks)], 1)
        return (x - 0.5) * 4.0

    def cells(self, labels: Tensor) -> Tensor:
        """The slot of every object ``[..., K]`` (its grid cell, row-major in y then x)."""
        return labels[..., self.ky] * self.nx + labels[..., self.kx]

    slots_of = cells

    def slot_factors(self, aux: Any, rows: Tensor, slots: Tensor) -> Tensor:
        """The factor vectors ``[N, K, D]`` of slots ``slots`` of images ``rows``."""
        return aux[0][rows, slots]

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trunk = self.backbone.conv
        fmap = trunk[: 3 * self.cell_stage](self._input(x))
        h = self.backbone.fc(trunk[3 * self.cell_stage:](fmap))                        # [B, F]
        cells = F.adaptive_avg_pool2d(fmap, (self.ny, self.nx)).flatten(2).transpose(1, 2)  # [B, S, C]
        B = x.shape[0]
        z = self.slot(torch.cat([cells, h[:, None].expand(B, self.slots, -1),
                                 self.cell_embed[None].expand(B, -1, -1)], -1))         # [B, S, hidden]
        other = torch.tanh(self.factor(z)).unflatten(-1, (len(self.other), self.dim))   # [B, S, K', D]
        iy, ix = torch.div(torch.arange(self.slots, device=x.device), self.nx, rounding_mode="floor"), \
            torch.arange(self.slots, device=x.device) % self.nx
        fx, fy = torch.tanh(self.pos_x)[ix], torch.tanh(self.pos_y)[iy]                  # [S, D]
        f = torch.empty(B, self.slots, len(self.sizes), self.dim, dtype=other.dtype, device=x.device)
        f[:, :, self.other] = other
        f[:, :, self.kx] = fx
        f[:, :, self.ky] = fy
        return f, self.presence(z).squeeze(-1)

    @staticmethod
    def combine(factors: Tensor, presence: Tensor) -> Tensor:
        return (torch.sigmoid(presence)[..., None] * factors.prod(dim=-2)).sum(dim=-2)

    def forward_with_factors(self, x: Tensor) -> tuple[Tensor, Any]:
        f, p = self.parts(x)
        return self.combine(f, p), (f, p)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_factors(x)[0]


def set_hits(res: SetDecomposition, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per scene: (set exactly right, count right), from object-slot labels ``[B, M, K]`` (-1 absent)."""
    present = (labels >= 0).all(-1)
    return res.hits([lab[m] for lab, m in zip(labels, present)])


def turned_scenes(images: Tensor, labels: Tensor, turns: Tensor, kx: int, ky: int, n: int) -> tuple[Tensor, Tensor]:
    """Images ``[B, C, S, S]`` turned by ``turns`` ``[B]`` quarter turns (0 to 3, counter-clockwise as
    shown, ``torch.rot90``) about the canvas centre, and their object labels ``[B, M, K]`` (absent
    objects -1) with each object's position moved with it: on a square grid of n positions symmetric
    about the centre, a quarter turn takes (x, y) to (y, n - 1 - x). Other labels are kept as they were
    (a rotation label, which the turn changes, is the caller's to ignore)."""
    images, labels = images.clone(), labels.clone()
    present = (labels >= 0).all(-1)
    for k in range(1, 4):
        rows = (turns % 4 == k).nonzero().flatten()
        if rows.numel() == 0:
            continue
        images[rows] = torch.rot90(images[rows], k, dims=(-2, -1))
        lab = labels[rows]
        x, y = lab[..., kx].clone(), lab[..., ky].clone()
        for _ in range(k):
            x, y = y, (n - 1) - x
        live = present[rows]
        lab[..., kx] = torch.where(live, x, lab[..., kx])
        lab[..., ky] = torch.where(live, y, lab[..., ky])
        labels[rows] = lab
    return images, labels


def rotation_turns(schema: Any) -> tuple[int, int, Tensor] | None:
    """(rotation attribute, shape attribute, table ``[n_shape, 4, n_rotation]``): the rotation value that
    the built-in renderer's drawing of a shape, turned by ``t`` counter-clockwise quarter turns
    (:func:`turned_scenes`), shows for each value (-1 where the turn is no value). A value is a fraction
    ``f`` of the shape's symmetry period ``360 / m`` degrees, drawn clockwise on screen, so a quarter turn
    takes it to ``f - m / 4`` (mod 1); a circle (``m = 0``) keeps it. None without both roles."""
    from .scenes.shapes import SHAPE_SYMMETRY

    kr, ks = schema.by_role("rotation"), schema.by_role("shape")
    if kr is None or ks is None:
        return None
    turns = schema.attributes[kr].render_params()
    table = torch.full((schema.sizes[ks], 4, len(turns)), -1, dtype=torch.long)
    for s, name in enumerate(schema.attributes[ks].render_params()):
        m = SHAPE_SYMMETRY[name]
        for t in range(4):
            for j, f in enumerate(turns):
                to = (f - t * m / 4) % 1.0
                hit = [i for i, g in enumerate(turns) if min(abs(g - to), 1 - abs(g - to)) < 1e-9]
                table[s, t, j] = hit[0] if hit else -1
    return kr, ks, table


def _giving_up(spec: str, opts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The set head ``spec`` (with keyword ``opts``) with the give-up rule at two thirds of its budget,
    for a diffusion head (or ``auto``'s diffusion method) that does not name ``give_up``: a round with no
    object the set would accept by then stops. On the shipped models' outputs accepted objects were
    found by iteration 128 of 300 (multi, 14,000 objects; one in 8,000 later, at 219) and 370 of 1000
    (clutter), while a round that holds none ran the whole budget (docs/BENCHMARKS.md, the give-up rule)."""
    name, own = parse_method(spec)
    budget = opts.get("iterations", own.get("iterations"))
    if name == "auto":
        inner = own.get("method", "diffusion")
        inner_name, inner_own = parse_method(inner)
        if inner_name == "diffusion" and "give_up" not in inner_own:
            budget = budget if budget is not None else inner_own.get("iterations")
            if budget is not None:
                spec = with_options(spec, method=with_options(inner, give_up=max(1, 2 * int(budget) // 3)))
    elif name == "diffusion" and "give_up" not in own and "give_up" not in opts and budget is not None:
        opts = {**opts, "give_up": max(1, 2 * int(budget) // 3)}
    return spec, opts


def _check_turnable(schema: Any, kx: int, ky: int) -> None:
    """Quarter turns keep every position label exact: a square canvas, as many x as y positions, their
    pixel centres symmetric about the canvas centre (the built-in renderer's)."""
    import numpy as np

    from .scenes.render import Renderer

    n = schema.sizes[kx]
    if schema.sizes[ky] != n:
        raise ValueError(f"scene_turns: a quarter turn swaps x and y, so they need as many positions; got "
                         f"{n} x and {schema.sizes[ky]} y")
    rows = np.zeros((n, len(schema.sizes)), dtype=np.int64)
    rows[:, kx] = rows[:, ky] = np.arange(n)
    try:
        c = Renderer(schema).centres(rows)
    except ValueError as e:
        raise ValueError(f"scene_turns: the positions must be the built-in renderer's, to be turned exactly "
                         f"({e})") from e
    side = schema.image_size
    if not (np.allclose(c[:, 0], c[:, 1], atol=1e-6) and np.allclose(c[:, 0] + c[::-1, 0], side, atol=1e-6)):
        raise ValueError("scene_turns: the x and y positions must be the same pixel centres, symmetric about "
                         "the canvas centre, so that a quarter turn takes every position to another")


class MultiVSAModel(VSAModel):
    """:class:`~vsa_vision.model.VSAModel` for a schema of several objects (``schema.max_objects > 1``).

    Extra arguments: ``slot_hidden`` (slot features), ``presence_weight`` and ``mse_weight`` (the
    weights of the presence and amplitude terms of the loss). The heads decode sets by explaining
    away; ``test_methods`` are compared on the same encoder outputs.
    ``slots``: ``"grid"`` (a slot per position cell) or ``"dense"`` (per-location heads,
    :class:`~vsa_vision.dense.DenseSlotEncoder`); for ``"dense"`` only: ``readout`` (locations
    bundled, default ``max_objects``), ``factor_head`` (``"codebook"`` or ``"tanh"``) and
    ``hard_readout`` (the codebook head's argmax codeword in eval mode).
    ``scene_turns``: the share of training scenes shown turned by one to three quarter turns about the
    canvas centre (:func:`turned_scenes`), every object's position moved with it; the attribute of role
    ``rotation``, which a turn changes, is not trained on a turned scene (nor the bundle that holds it),
    so a shape's reader sees it at every turn while no combination with a rotation is ever labelled
    that the data did not hold. Needs a square canvas and a position grid symmetric about its centre.
    ``turn_votes`` (dense slots, codebook head; an inference setting, :meth:`set_turn_votes` changes it
    on a trained model): in eval mode the image and up to three quarter turns of it vote on every
    attribute but the position (:class:`~vsa_vision.dense.DenseSlotEncoder`), which assumes, as
    ``scene_turns`` does, that a turn keeps them; the rotation through :func:`rotation_turns` (the
    value each turned drawing shows). 1: the image as drawn only.
    """

    def __init__(self, schema: str | dict[str, Any] = "multi", dim: int = 1024, codebook_seed: int = 0,
                 backbone: str = "small_cnn", width: int = 32, features: int = 256, norm: str = "group",
                 temperature: float = 16.0, lr: float = 2e-3, weight_decay: float = 0.0, schedule: str = "onecycle",
                 method: str = "diffusion", iterations: int = 300, method_options: dict[str, Any] | None = None,
                 test_methods: Sequence[str] = DEFAULT_TEST_METHODS, channels_last: bool = True,
                 heldout_method: str = "brute_force", silhouette: bool = True, val_head_cos: float | None = 0.9,
                 early_val_method: str = "brute_force", slot_hidden: int = 256, presence_weight: float = 1.0,
                 mse_weight: float = 1.0, denoise_masks: bool = False, init_from: str | None = None,
                 slots: str = "grid", readout: int | None = None, factor_head: str = "codebook",
                 hard_readout: bool = True, scene_turns: float = 0.0, turn_votes: int = 1) -> None:
        super().__init__(schema=schema, dim=dim, codebook_seed=codebook_seed, backbone=backbone, head="factorised",
                         width=width, features=features, norm=norm, loss="factor_contrastive",
                         temperature=temperature, lr=lr, weight_decay=weight_decay, schedule=schedule, method=method,
                         iterations=iterations, method_options=method_options, test_methods=test_methods,
                         channels_last=channels_last, heldout_method=heldout_method, silhouette=silhouette,
                         val_head_cos=val_head_cos, early_val_method=early_val_method,
                         denoise_masks=denoise_masks, init_from=init_from)
        if self.schema.max_objects < 2:
            raise ValueError(f"schema {self.schema.name!r}: one object a scene; use VSAModel")
        self.save_hyperparameters()
        # VSAModel's, not options here: the slots have their own head and loss, no learned decoder, no readers
        for fixed in ("head", "loss", "decoder", "decoder_batch", "decoder_weight", "decoder_kind", "readers",
                      "colour_blind", "reader_pad", "reader_turn"):
            self.hparams.pop(fixed, None)
        self.hparams["schema"] = self.schema.to_dict()
        self.hparams["test_methods"] = list(test_methods)
        kx, ky = self.schema.by_role("x"), self.schema.by_role("y")
        if kx is None or ky is None:
            raise ValueError(f"schema {self.schema.name!r}: the slots follow the position grid; it needs x and y")
        check_choice("slots", slots, SLOTS)
        if slots == "grid":
            self.encoder = GridSlotEncoder(dim=dim, sizes=self.schema.sizes, x_factor=kx, y_factor=ky,
                                           image_size=self.schema.image_size, width=width, features=features,
                                           norm=norm, silhouette=silhouette, hidden=slot_hidden,
                                           denoise_masks=denoise_masks)
        else:
            self.encoder = _dense_encoder(self.schema, dim, kx, ky, width=width, norm=norm, silhouette=silhouette,
                                          hidden=slot_hidden, denoise_masks=denoise_masks,
                                          readout=self.schema.max_objects if readout is None else readout,
                                          factor_head=factor_head, hard=hard_readout)
            self.encoder.set_codebooks([self._codebook(k) for k in range(len(self.schema.sizes))])
            moved = {self.schema.by_role(r) for r in ("x", "y", "rotation")}
            self.encoder.set_turn_kept([k for k in range(len(self.schema.sizes)) if k not in moved])
            if factor_head == "codebook" and (turning := rotation_turns(self.schema)) is not None:
                self.encoder.set_turn_rotation(*turning)
        self.set_turn_votes(turn_votes)
        if channels_last:
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
        self.scene_turns = check_float("scene_turns", scene_turns, 0.0, 1.0)
        if self.scene_turns > 0:
            _check_turnable(self.schema, kx, ky)
            if self.schema.by_role("rotation") is not None and self.scene_turns >= 1:
                raise ValueError("scene_turns: below 1 with a rotation attribute (the bundle, which holds the "
                                 "rotation, is trained on the scenes as drawn only)")
            if self.schema.by_role("rotation") is not None and (slots != "dense" or factor_head != "codebook"):
                raise ValueError("scene_turns: with a rotation attribute, the turned scenes' rotation is left out of "
                                 "the loss, which the dense slots' codebook head allows (slots='dense', "
                                 "factor_head='codebook')")

    def set_turn_votes(self, views: int) -> None:
        """Read the image and ``views - 1`` quarter turns of it in eval mode (1 to 4; see the class notes);
        kept in the hyperparameters, so an exported model keeps it."""
        views = check_int("turn_votes", views, 1, 4)
        if self.hparams.slots == "dense":
            self.encoder.set_turn_votes(views)  # which checks its head and canvas
        elif views > 1:
            raise ValueError(f"turn_votes: {views} needs the dense slots (slots='dense'); got slots="
                             f"{self.hparams.slots!r}")
        self.hparams["turn_votes"] = views

    # -- targets, decoding, loss ----------------------------------------------------------------

    def targets(self, labels: Tensor) -> Tensor:
        """The bundles ``[B, D]`` of object-slot labels ``[B, M, K]`` (absent slots -1 add nothing)."""
        present = (labels >= 0).all(-1)
        bound = self.codebooks.bind_indices(labels.clamp_min(0))             # [B, M, D]
        return (bound * present[..., None]).sum(1)

    def decode(self, vectors: Tensor, method: str | None = None) -> SetDecomposition:
        spec = self.resolve_method(method)
        opts = self.own_options(spec)
        if capabilities(spec).iterative:
            own = parse_method(spec)[1]
            opts.update({k: v for k, v in {"iterations": self.hparams.iterations, "seed": 0}.items() if k not in own})
            spec, opts = _giving_up(spec, opts)
        # the encoder's scale is learnt, not exact: the first object's amplitude sets each scene's
        return decompose_set(vectors.float(), self.codebooks.to(device=vectors.device), method=spec,
                             max_objects=self.schema.max_objects, scale="auto", **opts)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        turned = None
        if self.scene_turns > 0:
            k = torch.randint(1, 4, (len(labels),), device=labels.device)
            k = torch.where(torch.rand(len(labels), device=labels.device) < self.scene_turns, k, 0)
            kx = self.schema.by_role("x")
            images, labels = turned_scenes(images, labels, k, kx, self.schema.by_role("y"), self.schema.sizes[kx])
            turned = k > 0
        q, factors = self.encode(images)
        loss, cos = self.loss(q, labels, factors, turned=turned)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        if cos.numel():  # every scene of the batch turned: no bundle trained
            self.log("train/cos", cos.mean(), prog_bar=True, batch_size=len(cos))
        return loss

    def loss(self, q: Tensor, labels: Tensor, factors: Any = None,
             turned: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(loss, cosine of ``q`` to the target bundle per image); ``factors`` is the slot head's
        ``(factor vectors, presence logits)``; ``turned`` ``[B]`` bool: scenes turned by
        :func:`turned_scenes`, whose rotation attribute (and so their bundle) is not trained (their
        cosine is not returned)."""
        target = self.targets(labels)
        cos = F.cosine_similarity(q, target, dim=-1)
        present = (labels >= 0).all(-1)                                      # [B, M]
        krot = self.schema.by_role("rotation")
        if turned is not None and krot is not None and bool(turned.any()):
            keep = ~turned  # the bundle holds the rotation: trained on the scenes as drawn only
            n = keep.sum().clamp_min(1)
            cos = cos[keep]
            total = (1 - cos).sum() / n + self.hparams.mse_weight * (q - target)[keep].pow(2).mean(-1).sum() / n
        else:
            turned = None
            total = (1 - cos).mean() + self.hparams.mse_weight * (q - target).pow(2).mean()
        if factors is not None:
            p = factors[1]
            B, S = p.shape
            cell = self.encoder.slots_of(labels.clamp_min(0))                   # [B, M]
            rows = torch.arange(B, device=labels.device)[:, None].expand_as(cell)
            occupied = torch.zeros(B, S, dtype=torch.bool, device=labels.device)
            occupied[rows[present], cell[present]] = True
            bce = F.binary_cross_entropy_with_logits(p, occupied.float()) * getattr(self.encoder, "presence_scale", 1.0)
            total = total + self.hparams.presence_weight * bce
            if bool(present.any()):
                ignore = None
                if turned is not None:  # the rotation of a turned scene's objects is not trained
                    ignore = torch.zeros_like(labels, dtype=torch.bool)
                    ignore[turned, :, krot] = True
                    ignore = ignore[present]
                term = getattr(self.encoder, "slot_loss", lambda *a, **k: None)(
                    factors, rows[present], cell[present], labels[present], ignore=ignore)
                if term is None:
                    chosen = self.encoder.slot_factors(factors, rows[present], cell[present])
                    term = self._factor_loss(chosen, labels[present], contrastive=True)
                total = total + term
        return total, cos

    # -- evaluation -----------------------------------------------------------------------------

    def _evaluate(self, q: Tensor, labels: Tensor, method: str | None) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = self.decode(q, method)
        if q.is_cuda:
            torch.cuda.synchronize()
        sets, counts = set_hits(res, labels.cpu())
        return {"hit": sets[:, None], "count": counts, "seconds": time.perf_counter() - t0}

    def _log_val_details(self, log, r: dict[str, Any]) -> None:
        """The fraction of scenes whose number of objects was read right."""
        log("val/acc_count", r["count"].float().mean())

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        q = self(images)
        cos = F.cosine_similarity(q, self.targets(labels), dim=-1)
        objects = (labels >= 0).all(-1).sum(1).cpu()
        for method in self.hparams.test_methods:
            r = self._evaluate(q, labels, method)
            acc = self._test.setdefault((dataloader_idx, method), {
                "n": 0, "all": 0, "count": 0, "seconds": 0.0, "cos": 0.0, "by_objects": {}})
            acc["n"] += len(labels)
            acc["all"] += int(r["hit"].sum())
            acc["count"] += int(r["count"].sum())
            acc["seconds"] += r["seconds"]
            acc["cos"] += float(cos.sum())
            for m in objects.unique().tolist():
                row = acc["by_objects"].setdefault(int(m), [0, 0])
                row[0] += int((objects == m).sum())
                row[1] += int(r["hit"][objects == m].sum())

    def on_test_epoch_end(self) -> None:
        names = self.test_split_names()
        report: dict[str, Any] = {"schema": self.schema.name, "dim": self.hparams.dim,
                                  "iterations": self.hparams.iterations, "splits": {}}
        for (idx, method), acc in sorted(self._test.items(), key=lambda kv: kv[0][0]):
            n = acc["n"]
            split = names[idx] if idx < len(names) else f"test{idx}"
            row = {"images": n, "acc_all": acc["all"] / n, "acc_count": acc["count"] / n,
                   "acc_by_objects": {str(m): h / c for m, (c, h) in sorted(acc["by_objects"].items())},
                   "mean_cos": acc["cos"] / n, "decode_ms_per_image": 1e3 * acc["seconds"] / n}
            report["splits"].setdefault(split, {})[method] = row
            self.log(f"test_{split}/{method}/acc_all", row["acc_all"], add_dataloader_idx=False)
        self.test_report = report

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        res = self.decode(self(images))
        return [{"objects": labs, "confidence": conf.cpu().tolist()} for labs, conf in zip(res.labels, res.confidence)]
