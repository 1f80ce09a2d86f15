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
    try:
        version = int(meta.get("version", "-1"))
    except ValueError:
        raise CheckpointError(f"checkpoint {path}: its metadata field 'version' is {meta.get('version')!r}, not a "
                              "format version number") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {version} (metadata field 'version') is newer "
                              f"than this vsa_vision reads ({FORMAT_VERSION})")
    return (_json_field(path, meta, "hparams", required=True), state, _json_field(path, meta, "codebooks"),
            _json_field(path, meta, "trust"))


def _json_field(path: str, meta: dict[str, str], field: str, required: bool = False) -> Any:
    """The JSON of metadata ``field`` (None when absent and not ``required``)."""
    what = {"hparams": "hyperparameters", "codebooks": "record of its codebooks", "trust": "trust rules"}[field]
    if field not in meta:
        if required:
            raise CheckpointError(f"checkpoint {path}: its {what} (metadata field {field!r}) are missing")
        return None
    try:
        return json.loads(meta[field])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path}: its {what} (metadata field {field!r}) are not readable JSON "
                              f"({e})") from None


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
    from those recorded with its codebooks at training (a reordered schema would mislabel every image),
    metadata of the wrong type (a hyperparameter, the record of the codebooks, the trust rules), or trust
    rules that cannot be evaluated or are another model's (:func:`vsa_vision.trust.check_record`): every
    refusal names the file and the field."""
    from .model import CODEBOOKS_KEY, TRUST_KEY

    path = resolve_checkpoint(path)
    hparams, state, record, trust = _read(path)
    if not isinstance(hparams, dict):
        raise CheckpointError(f"checkpoint {path}: its hyperparameters (field 'hparams') must be a mapping, got "
                              f"{type(hparams).__name__}")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: its weights (field 'state_dict') must be a mapping, got "
                              f"{type(state).__name__}")
    _check_codebook_record(path, record)
    if trust is not None and not isinstance(trust, dict):
        raise CheckpointError(f"checkpoint {path}: its trust rules (field 'trust') must be a mapping, got "
                              f"{type(trust).__name__}")
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    try:
        cls = model_class(hparams.get("schema", "default"))
    except (TypeError, ValueError, AttributeError, LookupError, OSError) as e:
        raise CheckpointError(f"checkpoint {path}: its hyperparameter 'schema' is not a usable schema ({e})") from None
    _check_hparam_types(path, cls, hparams)
    try:
        model = cls(**hparams)
    except (TypeError, ValueError, AttributeError, LookupError, OSError) as e:
        raise CheckpointError(f"checkpoint {path}: its hyperparameters do not build a model "
                              f"({_naming_field(e, cls, hparams)}{e})") from None
    try:
        model.on_load_checkpoint({"state_dict": state, CODEBOOKS_KEY: record, TRUST_KEY: trust})
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError, TypeError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        if lines and lines[0].startswith("Error(s) in loading state_dict"):
            raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its hyperparameters (field "
                                  f"'hparams') build: {'; '.join(lines[1:3])}") from None
        raise CheckpointError(f"checkpoint {path}: {lines[0] if lines else type(e).__name__}") from None
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    if model.trust is not None:
        from .trust import TrustRule, model_features

        try:
            TrustRule(model.trust, features=model_features(model.schema), attributes=len(model.schema.attributes))
        except ValueError as e:
            raise CheckpointError(f"checkpoint {path}: its trust rules (field 'trust') cannot be used: {e}") from None
    return model.eval().to(map_location)


def _check_codebook_record(path: str, record: Any) -> None:
    """Refuse a record of the codebooks (:func:`vsa_vision.model.codebook_record`) of the wrong shape."""
    if record is None:
        return
    ok = (isinstance(record, dict) and isinstance(record.get("names", []), list)
          and isinstance(record.get("labels", []), list)
          and all(isinstance(v, list) for v in record.get("labels", []))
          and isinstance(record.get("sha256", ""), str))
    if not ok:
        raise CheckpointError(f"checkpoint {path}: its record of the codebooks (field 'codebooks') must be a mapping "
                              f"of 'names' (a list), 'labels' (a list of lists) and 'sha256', got {record!r:.100}")


def _allowed_types(default: Any, annotation: Any) -> tuple[type, ...] | None:
    """The JSON types a hyperparameter takes, from its default and its annotation (None: not checked)."""
    text = annotation if isinstance(annotation, str) else str(annotation)
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float) or "float" in text:
        return (int, float)
    if "dict" in text and "str |" in text:
        return (str, dict)
    if "str |" in text and "Sequence" in text:  # a name or a list of names (``readers``)
        return (str, list, tuple)
    if isinstance(default, str) or "str" in text.split("[")[0]:
        return (str,)
    if isinstance(default, (tuple, list)) or "Sequence" in text:
        return (list, tuple)
    if "dict" in text:
        return (dict,)
    return None


def _check_hparam_types(path: str, cls: type, hparams: dict[str, Any]) -> None:
    """Refuse, naming it, a hyperparameter whose JSON type is not one the model class takes (an int where
    the default is an int, a string where it is a string, ...); None only where the default is None or
    the annotation allows it (``val_head_cos: float | None``)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    for key, value in hparams.items():
        p = params.get(key)
        if p is None or p.default is inspect.Parameter.empty:
            continue
        if value is None and (p.default is None or "None" in str(p.annotation)):  # optional by default or type
            continue
        allowed = _allowed_types(p.default, p.annotation)
        if allowed is None:
            continue
        bad = value is None or not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        if not bad and isinstance(value, float) and value != value:  # NaN
            bad = True
        if not bad and isinstance(value, (list, tuple)) and not all(isinstance(v, str) for v in value):
            bad = True
        if bad:
            said = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
                    list: "a list of strings"}
            names = " or ".join(said[t] for t in dict.fromkeys(list if t is tuple else t for t in allowed))
            raise CheckpointError(f"checkpoint {path}: its hyperparameter {key!r} must be {names}, got {value!r:.80}")


def _naming_field(e: BaseException, cls: type, hparams: dict[str, Any]) -> str:
    """``"hyperparameter 'x': "`` for the hyperparameter the error is about, else nothing: of those whose
    value the message quotes (else those it names), the one without which the model builds."""
    import re

    text = str(e)
    quoted = [k for k, v in hparams.items() if isinstance(v, str) and v and repr(v) in text]
    named = [k for k in hparams if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text)]
    candidates = quoted or named
    if len(candidates) > 1:  # rebuild without each (its default): the one that was in the way
        for key in candidates:
            try:
                cls(**{k: v for k, v in hparams.items() if k != key})
            except Exception:  # noqa: BLE001  (any failure: not the culprit alone)
                continue
            return f"hyperparameter {key!r}: "
    return f"hyperparameter {candidates[0]!r}: " if candidates else ""
