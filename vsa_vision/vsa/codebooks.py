"""Named codebooks of K factors (``Codebooks``) and the validation of decomposition inputs.

Factor k has ``n_k`` value labels and a bipolar matrix of shape ``[n_k, D]``; the sizes ``n_k`` may
differ, the dimension ``D`` is shared. Saved as safetensors (no pickle), atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..io import atomic_path
from .ops import bind, cosine_similarity, is_bipolar, random_bipolar, readout

__all__ = ["Codebooks", "check_problem"]

_FORMAT = "vsa_vision.codebooks"
_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    return name


def _check_tensor(name: str, t: Any, first: Any) -> None:
    """One factor's codebook: a floating 2-D tensor ``[n_k, D]`` with the first factor's D and device."""
    if not isinstance(t, Tensor):
        raise TypeError(f"codebook {name!r}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"codebook {name!r}: expected a 2-D tensor [n_k, D], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(
            f"codebook {name!r}: expected at least one codeword of dimension >= 1, got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise TypeError(f"codebook {name!r}: expected a floating dtype, got {t.dtype}")
    if t is first or not isinstance(first, Tensor) or first.dim() != 2:
        return
    if t.shape[1] != first.shape[1]:
        raise ValueError(
            f"codebook {name!r}: dimension D must match the other factors ({first.shape[1]}), got {t.shape[1]}"
        )
    if t.device != first.device:
        raise ValueError(
            f"codebook {name!r}: all codebooks must be on one device; got {first.device} and {t.device}"
        )


#: the dtypes a codebooks file may name for its factors
_FILE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}


def _loaded_tensor(path: str, name: Any, t: Tensor, dtype: Any) -> Tensor:
    """One factor read from a codebooks file, checked: int8 storage holds +-1 only (what :meth:`~Codebooks.save`
    writes), every entry is finite, the dtype is a floating one."""
    if dtype not in _FILE_DTYPES:
        raise ValueError(f"{path}: factor {name!r} has dtype {dtype!r}; expected one of {sorted(_FILE_DTYPES)}")
    if t.dtype == torch.int8:
        bad = t[(t != 1) & (t != -1)]
        if bad.numel():
            raise ValueError(f"{path}: factor {name!r} is stored as int8 (bipolar) but holds values other "
                             f"than +1/-1, e.g. {bad.flatten()[:3].tolist()}")
    elif t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: factor {name!r} contains non-finite values (NaN or inf)")
    else:
        raise ValueError(f"{path}: factor {name!r} is stored as {t.dtype}; expected int8 (+-1) or a float dtype")
    return t.to(_FILE_DTYPES[dtype])


class Codebooks:
    """K named factors, each a bipolar codebook ``[n_k, D]`` with one label per codeword.

    Build with :meth:`random` (from a seed) or :meth:`from_tensors`. Immutable by convention:
    :meth:`to` returns a new object.

    >>> cb = Codebooks.random({"shape": 8, "colour": ["red", "green"]}, dim=64, seed=0)
    >>> cb.names, cb.sizes, cb.dim
    (('shape', 'colour'), (8, 2), 64)
    """

    def __init__(
        self,
        names: Sequence[str],
        tensors: Sequence[Tensor],
        labels: Sequence[Sequence[str]] | None = None,
    ) -> None:
        names = tuple(_check_name(n, "factor name") for n in names)
        if not names:
            raise ValueError("codebooks: expected at least one factor, got none")
        if len(set(names)) != len(names):
            raise ValueError(f"codebooks: factor names must be unique, got {list(names)}")
        tensors = tuple(tensors)
        if len(tensors) != len(names):
            raise ValueError(f"codebooks: got {len(names)} names but {len(tensors)} tensors")
        for name, t in zip(names, tensors):
            _check_tensor(name, t, tensors[0])
        if labels is None:
            labels = [[str(i) for i in range(t.shape[0])] for t in tensors]
        labels = tuple(tuple(str(v) for v in lab) for lab in labels)
        if len(labels) != len(names):
            raise ValueError(f"codebooks: got {len(names)} names but {len(labels)} label lists")
        for name, lab, t in zip(names, labels, tensors):
            if len(lab) != t.shape[0]:
                raise ValueError(
                    f"codebook {name!r}: expected {t.shape[0]} labels (one per codeword), got {len(lab)}"
                )
            if len(set(lab)) != len(lab):
                raise ValueError(f"codebook {name!r}: value labels must be unique, got {list(lab)}")
        self._names = names
        self._tensors = tensors
        self._labels = labels
        self._label_index = [{v: i for i, v in enumerate(lab)} for lab in labels]

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def random(
        cls,
        factors: Mapping[str, int | Sequence[str]],
        dim: int,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Codebooks:
        """I.i.d. random bipolar codebooks from a seed.

        ``factors`` maps each factor name to its number of values or to its list of value labels.
        The draw happens on the CPU, so the same seed gives the same codebooks on every device."""
        if not isinstance(factors, Mapping) or not factors:
            raise ValueError(f"factors: expected a non-empty mapping name -> size or labels, got {factors!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive integer, got {dim!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        gen = torch.Generator().manual_seed(seed)
        names, tensors, labels = [], [], []
        for name, spec in factors.items():
            _check_name(name, "factor name")
            if isinstance(spec, bool):
                raise ValueError(f"factor {name!r}: expected a size or a list of labels, got {spec!r}")
            if isinstance(spec, int):
                if spec < 1:
                    raise ValueError(f"factor {name!r}: expected a size >= 1, got {spec}")
                lab = [str(i) for i in range(spec)]
            elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
                lab = [str(v) for v in spec]
                if not lab:
                    raise ValueError(f"factor {name!r}: expected at least one value label, got none")
            else:
                raise ValueError(f"factor {name!r}: expected a size or a list of labels, got {spec!r}")
            names.append(name)
            labels.append(lab)
            tensors.append(random_bipolar((len(lab), dim), gen, dtype=dtype))
        out = cls(names, tensors, labels)
        return out.to(device=device) if device is not None else out

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, Tensor],
        labels: Mapping[str, Sequence[str]] | None = None,
        check_bipolar: bool = True,
    ) -> Codebooks:
        """Codebooks from a mapping ``name -> tensor [n_k, D]`` of +-1 entries.

        ``labels`` optionally maps names to value labels (default ``"0", "1", ...``). Integer tensors
        are converted to float32. With ``check_bipolar`` (default) any entry other than +-1 is refused."""
        if not isinstance(tensors, Mapping) or not tensors:
            raise ValueError(f"tensors: expected a non-empty mapping name -> tensor, got {tensors!r}")
        names = list(tensors)
        ts = []
        for name in names:
            t = tensors[name]
            if not isinstance(t, Tensor):
                raise TypeError(f"codebook {name!r}: expected a torch.Tensor, got {type(t).__name__}")
            if not t.is_floating_point():
                t = t.to(torch.float32)
            if check_bipolar and t.numel() and not is_bipolar(t):
                bad = t[(t != 1) & (t != -1)].flatten()[:3].tolist()
                raise ValueError(f"codebook {name!r}: expected entries +1/-1 only, found e.g. {bad}")
            ts.append(t)
        lab = None
        if labels is not None:
            unknown = set(labels) - set(names)
            if unknown:
                raise ValueError(f"labels: unknown factor(s) {sorted(unknown)}; factors are {names}")
            lab = [labels.get(n, [str(i) for i in range(tensors[n].shape[0])]) for n in names]
        return cls(names, ts, lab)

    # -- properties --------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def labels(self) -> tuple[tuple[str, ...], ...]:
        return self._labels

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self._tensors

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(t.shape[0] for t in self._tensors)

    @property
    def num_factors(self) -> int:
        return len(self._names)

    @property
    def dim(self) -> int:
        return self._tensors[0].shape[1]

    @property
    def device(self) -> torch.device:
        return self._tensors[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self._tensors[0].dtype

    @property
    def bipolar(self) -> bool:
        """Whether every codeword entry is +-1 (then every bound vector has norm sqrt(D)); computed
        from the tensors each time, so a codebook changed in place is seen."""
        return all(is_bipolar(t) for t in self._tensors)

    @property
    def search_space(self) -> int:
        """Number of combinations, ``prod_k n_k``."""
        out = 1
        for n in self.sizes:
            out *= n
        return out

    def __len__(self) -> int:
        return self.num_factors

    def __iter__(self):
        return iter(self._names)

    def factor_index(self, factor: str | int) -> int:
        """Position of a factor given by name or index, with a clear error for unknown ones."""
        if isinstance(factor, int) and not isinstance(factor, bool):
            if not -self.num_factors <= factor < self.num_factors:
                raise ValueError(f"factor: index {factor} out of range for {self.num_factors} factors")
            return factor % self.num_factors
        if factor not in self._names:
            raise ValueError(f"factor: unknown factor {factor!r}; factors are {list(self._names)}")
        return self._names.index(factor)

    def __getitem__(self, factor: str | int) -> Tensor:
        return self._tensors[self.factor_index(factor)]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={s}" for n, s in zip(self._names, self.sizes))
        return f"Codebooks({inner}; D={self.dim}, {self.dtype}, {self.device})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Codebooks):
            return NotImplemented
        return (
            self._names == other._names
            and self._labels == other._labels
            and all(
                a.shape == b.shape and torch.equal(a.cpu().to(torch.float64), b.cpu().to(torch.float64))
                for a, b in zip(self._tensors, other._tensors)
            )
        )

    __hash__ = None  # mutable tensors inside: not hashable

    # -- moving ------------------------------------------------------------------------------

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Codebooks:
        """The same codebooks on another device and/or in another floating dtype."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
        ts = [t.to(device=device, dtype=dtype) for t in self._tensors]
        return Codebooks(self._names, ts, self._labels)

    def padded(self) -> tuple[Tensor, Tensor]:
        """All codebooks stacked into one ``[K, n_max, D]`` tensor (zero rows as padding) and a
        ``[K, n_max]`` bool mask of the real rows: for code that handles every factor in one batched
        matrix product."""
        n_max = max(self.sizes)
        out = torch.zeros(self.num_factors, n_max, self.dim, dtype=self.dtype, device=self.device)
        mask = torch.zeros(self.num_factors, n_max, dtype=torch.bool, device=self.device)
        for k, t in enumerate(self._tensors):
            out[k, : t.shape[0]] = t
            mask[k, : t.shape[0]] = True
        return out, mask

    # -- composing and labelling ---------------------------------------------------------------

    def check_indices(self, indices: Tensor, name: str = "indices") -> Tensor:
        """Validate an integer tensor ``[..., K]`` of codeword indices; returns it as long."""
        if not isinstance(indices, Tensor):
            raise TypeError(f"{name}: expected a LongTensor [..., K], got {type(indices).__name__}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"{name}: expected an integer tensor, got {indices.dtype}")
        if indices.dim() == 0 or indices.shape[-1] != self.num_factors:
            raise ValueError(
                f"{name}: expected shape [..., K] with K = {self.num_factors}, got {tuple(indices.shape)}"
            )
        indices = indices.long()
        if indices.numel():
            sizes = torch.tensor(self.sizes, device=indices.device)
            bad = (indices < 0) | (indices >= sizes)
            if bool(bad.any()):
                pos = bad.nonzero()[0].tolist()
                k = pos[-1]
                raise ValueError(
                    f"{name}: index {int(indices[tuple(pos)])} at position {pos} is out of range for "
                    f"factor {self._names[k]!r} with {self.sizes[k]} values"
                )
        return indices

    def codewords(self, indices: Tensor) -> list[Tensor]:
        """The codeword of each factor: a list of K tensors ``[..., D]``."""
        indices = self.check_indices(indices).to(self.device)
        return [t[indices[..., k]] for k, t in enumerate(self._tensors)]

    def bind_indices(self, indices: Tensor) -> Tensor:
        """The bound vector ``c_{1,i_1} * ... * c_{K,i_K}`` of indices ``[..., K]`` -> ``[..., D]``."""
        return bind(*self.codewords(indices))

    def indices_of(self, labels: Mapping[str, str] | Sequence[Mapping[str, str]]) -> Tensor:
        """Indices ``[K]`` (one mapping) or ``[B, K]`` (a list of mappings) of value labels by name."""
        single = isinstance(labels, Mapping)
        rows = [labels] if single else list(labels)
        out = []
        for r, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"labels[{r}]: expected a mapping factor -> value, got {type(row).__name__}")
            missing = [n for n in self._names if n not in row]
            extra = [n for n in row if n not in self._names]
            if missing or extra:
                raise ValueError(
                    f"labels[{r}]: expected exactly the factors {list(self._names)}; "
                    f"missing {missing}, unknown {extra}"
                )
            idx = []
            for k, n in enumerate(self._names):
                v = str(row[n])
                if v not in self._label_index[k]:
                    raise ValueError(
                        f"labels[{r}]: unknown value {v!r} for factor {n!r}; valid values are {list(self._labels[k])}"
                    )
                idx.append(self._label_index[k][v])
            out.append(idx)
        t = torch.tensor(out, dtype=torch.long, device=self.device).reshape(len(rows), self.num_factors)
        return t[0] if single else t

    def bind_labels(self, labels: Mapping[str, str] | Sequence[Mapping[str, str]]) -> Tensor:
        """The bound vector of value labels given by factor name (one mapping or a list)."""
        return self.bind_indices(self.indices_of(labels))

    def labels_of(self, indices: Tensor) -> list[dict[str, str]]:
        """Value labels ``{factor: label}`` of each row of indices ``[B, K]`` (or ``[K]``)."""
        indices = self.check_indices(indices)
        flat = indices.reshape(-1, self.num_factors).cpu().tolist()
        return [{n: self._labels[k][row[k]] for k, n in enumerate(self._names)} for row in flat]

    def readout(self, estimates: Sequence[Tensor], sign_invariant: bool = True) -> tuple[Tensor, Tensor]:
        """See :func:`readout`."""
        return readout(estimates, self, sign_invariant=sign_invariant)

    def similarity(self, s: Tensor, indices: Tensor) -> Tensor:
        """Cosine similarity between ``s [..., D]`` and the bound vector of ``indices [..., K]``."""
        return cosine_similarity(s, self.bind_indices(indices).to(s.dtype))

    # -- saving ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain data (tensors, strings) for embedding in a checkpoint; see :meth:`from_state_dict`."""
        return {
            "names": list(self._names),
            "labels": [list(lab) for lab in self._labels],
            "tensors": [t.detach().cpu().clone() for t in self._tensors],
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Codebooks:
        try:
            return cls(state["names"], state["tensors"], state["labels"])
        except KeyError as e:
            raise ValueError(f"codebooks state: missing entry {e.args[0]!r}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file (no pickle), atomically: a temporary file, then a rename.

        Codewords are stored as int8 (+-1) when bipolar, else in their dtype; names and labels go
        into the file's metadata."""
        from safetensors.torch import save_file

        path = os.fspath(path)
        tensors, dtypes = {}, []
        for k, t in enumerate(self._tensors):
            t = t.detach().cpu().contiguous()
            if is_bipolar(t):
                tensors[f"factor_{k}"] = t.to(torch.int8)
            else:
                tensors[f"factor_{k}"] = t
            dtypes.append(str(t.dtype).removeprefix("torch."))
        meta = {
            "format": _FORMAT,
            "version": str(_FORMAT_VERSION),
            "names": json.dumps(list(self._names)),
            "labels": json.dumps([list(lab) for lab in self._labels]),
            "dtypes": json.dumps(dtypes),
        }
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str | None = None) -> Codebooks:
        """Read a file written by :meth:`save`. Refuses files of another format with a clear error."""
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"codebooks file not found: {path}")
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"{path}: not a vsa_vision codebooks file (format {meta.get('format')!r})")
                if meta.get("version") != str(_FORMAT_VERSION):
                    raise ValueError(f"{path}: codebooks format version {meta.get('version')!r} is not supported "
                                     f"(this vsa_vision reads version {_FORMAT_VERSION})")
                names = json.loads(meta["names"])
                labels = json.loads(meta["labels"])
                dtypes = json.loads(meta["dtypes"])
                if not isinstance(names, list) or not isinstance(dtypes, list) or len(dtypes) != len(names):
                    raise ValueError(f"{path}: expected one dtype per factor name, got names {names!r} and "
                                     f"dtypes {dtypes!r}")
                tensors = [_loaded_tensor(path, n, f.get_tensor(f"factor_{k}"), dtypes[k])
                           for k, n in enumerate(names)]
        except ValueError:
            raise
        except Exception as e:  # truncated or corrupt file: safetensors raises its own errors
            raise ValueError(f"{path}: cannot read codebooks ({type(e).__name__}: {e})") from None
        try:
            out = cls(names, tensors, labels)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: invalid codebooks ({e})") from None
        return out.to(device=device) if device is not None else out


# ----------------------------------------------------------------------------------------------
# Validation of decomposition inputs (shared by every decomposer)
# ----------------------------------------------------------------------------------------------


def check_problem(s: Any, codebooks: Any, name: str = "s") -> tuple[Tensor, Codebooks, bool]:
    """Validate a decomposition input. Returns ``s`` as ``[B, D]`` in the codebooks' dtype,
    the codebooks, and whether ``s`` was a single vector ``[D]``.

    Raises ``TypeError``/``ValueError`` naming the argument, what was expected and what came."""
    if not isinstance(codebooks, Codebooks):
        raise TypeError(f"codebooks: expected vsa_vision.Codebooks, got {type(codebooks).__name__}")
    if not isinstance(s, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, D], got {type(s).__name__}")
    if s.is_complex() or s.dtype == torch.bool:
        raise TypeError(f"{name}: expected a real tensor, got {s.dtype}")
    single = s.dim() == 1
    if s.dim() not in (1, 2):
        raise ValueError(f"{name}: expected shape [B, D] or [D], got {tuple(s.shape)}")
    if s.shape[-1] != codebooks.dim:
        raise ValueError(
            f"{name}: dimension mismatch, the codebooks have D = {codebooks.dim} but {name} has "
            f"shape {tuple(s.shape)}"
        )
    if s.device != codebooks.device:
        raise ValueError(
            f"{name}: on {s.device} but the codebooks are on {codebooks.device}; move one with .to()"
        )
    s2 = s.reshape(1, -1) if single else s
    if s2.is_floating_point() and s2.numel() and not bool(torch.isfinite(s2).all()):
        rows = (~torch.isfinite(s2)).any(-1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"{name}: contains non-finite values (NaN or inf) in row(s) {rows}")
    return s2.to(codebooks.dtype), codebooks, single
