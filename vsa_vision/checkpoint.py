"""Loading and exporting trained models without unpickling anything.

Two formats are read:

- a Lightning ``.ckpt`` (as ``train.py`` writes under ``checkpoints/``), loaded with
  ``torch.load(weights_only=True)``;
- a weights file ``.safetensors`` whose metadata holds the model's hyperparameters as JSON
  (:func:`export_model` writes it).

Shipped checkpoints are package data in ``vsa_vision/checkpoints/`` (so a wheel carries them) and
are named by their file name without the extension: ``load_model("default")`` (or no argument) is
``vsa_vision/checkpoints/default.safetensors``; :func:`shipped_checkpoints` lists the names.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from .io import atomic_path

FORMAT = "vsa_vision.model"
FORMAT_VERSION = 1
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
DEFAULT_NAME = "default"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, truncated, of another format, or does not fit."""


def shipped_checkpoints() -> list[str]:
    """The names of the checkpoints shipped in the package (``vsa_vision/checkpoints/<name>.safetensors``)."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(f[: -len(".safetensors")] for f in os.listdir(SHIPPED_DIR) if f.endswith(".safetensors"))


def default_checkpoint(name: str = DEFAULT_NAME) -> str:
    """Path of the shipped checkpoint ``name`` (package data, in a source tree or an installed wheel)."""
    path = os.path.join(SHIPPED_DIR, f"{name}.safetensors")
    if os.path.isfile(path):
        return path
    raise CheckpointError(f"no shipped checkpoint named {name!r} (looked for {path}; shipped: "
                          f"{shipped_checkpoints()}); pass a checkpoint path")


def resolve_checkpoint(path: str | os.PathLike | None = None) -> str:
    """The file a checkpoint argument means: None is the shipped default; an existing file is itself; a
    bare name (no folder, no extension) is a shipped checkpoint, e.g. ``"default"``."""
    if path is None:
        return default_checkpoint()
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if path and os.path.basename(path) == path and "." not in path:
        return default_checkpoint(path)
    return path


def export_model(model, path: str | os.PathLike) -> str:
    """Write ``model`` (a :class:`vsa_vision.model.VSAModel`) as safetensors + JSON hyperparameters, atomically."""
    from safetensors.torch import save_file

    from .model import codebook_record

    path = os.fspath(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "hparams": json.dumps(dict(model.hparams)),
            "codebooks": json.dumps(codebook_record(model.codebooks))}
    if getattr(model, "trust", None) is not None:
        meta["trust"] = json.dumps(model.trust)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, tmp, metadata=meta)
    return path


Read = tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any] | None]


def _read(path: str) -> Read:
    """(hyperparameters, state dict, record of the trained codebooks or None, fitted trust rules or
    None) of a checkpoint file, by its extension."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: no such file")
    return _read_safetensors(path) if path.endswith(".safetensors") else _read_lightning(path)


def _read_safetensors(path: str) -> Read:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers / short files
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a vsa_vision model (format {meta.get('format')!r})")
    if int(meta.get("version", -1)) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {meta.get('version')} is newer than this "
                              f"vsa_vision reads ({FORMAT_VERSION})")
    try:
        hparams = json.loads(meta["hparams"])
        record = json.loads(meta["codebooks"]) if "codebooks" in meta else None
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path}: its hyperparameters are missing or unreadable") from None
    try:
        trust = json.loads(meta["trust"]) if "trust" in meta else None
    except json.JSONDecodeError:
        raise CheckpointError(f"checkpoint {path}: its trust rules are unreadable") from None
    return hparams, state, record, trust


def _read_lightning(path: str) -> Read:
    from .model import CODEBOOKS_KEY, TRUST_KEY

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with foreign objects, not a torch file at all
        raise CheckpointError(f"checkpoint {path}: cannot be read as a Lightning checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"checkpoint {path}: not a Lightning checkpoint of a vsa_vision model "
                              "(no state_dict / hyper_parameters)")
    hparams, state = ckpt["hyper_parameters"], ckpt["state_dict"]
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: its hyper_parameters and state_dict must be mappings, got "
                              f"{type(hparams).__name__} and {type(state).__name__}")
    return dict(hparams), state, ckpt.get(CODEBOOKS_KEY), ckpt.get(TRUST_KEY)


def model_class(schema: Any):
    """The model class for a schema: :class:`~vsa_vision.multi.MultiVSAModel` where a scene holds
    several objects, else :class:`~vsa_vision.model.VSAModel`."""
    from .model import VSAModel
    from .multi import MultiVSAModel
    from .scenes.schema import load_schema

    return MultiVSAModel if load_schema(schema).max_objects > 1 else VSAModel


def load_model(path: str | os.PathLike | None = None, map_location: str | torch.device = "cpu"):
    """A :class:`vsa_vision.model.VSAModel` in eval mode from a ``.ckpt`` or ``.safetensors`` file or
    the name of a shipped checkpoint (default: the shipped ``"default"``). Refuses, with
    :class:`CheckpointError`, a file that is missing, corrupt or truncated, of another format, whose
    weights or codebooks do not fit its own hyperparameters, or whose schema's names or labels differ
    from those recorded with its codebooks at training (a reordered schema would mislabel every image)."""
    from .model import CODEBOOKS_KEY, TRUST_KEY

    path = resolve_checkpoint(path)
    hparams, state, record, trust = _read(path)
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: its hyperparameters and weights must be mappings, got "
                              f"{type(hparams).__name__} and {type(state).__name__}")
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    try:
        model = model_class(hparams.get("schema", "default"))(**hparams)
    except (TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path}: its hyperparameters do not build a model ({e})") from None
    try:
        model.on_load_checkpoint({"state_dict": state, CODEBOOKS_KEY: record, TRUST_KEY: trust})
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: {str(e).splitlines()[0]}") from None
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.eval().to(map_location)
