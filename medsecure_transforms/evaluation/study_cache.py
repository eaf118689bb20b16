"""On-disk caches of the studies, keyed by the content an entry was computed from.

A cache entry (e.g. a batch of adversarial examples) is valid only for the exact inputs, parameters and network
weights that produced it; naming it after a bundle or a data root lets a rerun on other data silently read the old
results. :func:`content_key` hashes JSON-ready parameters together with :func:`tensor_digest` /
:func:`module_digest` of the tensors and networks, and :func:`cached` stores one entry per key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..artefacts import atomic_write

__all__ = ["cached", "content_key", "module_digest", "tensor_digest"]

T = TypeVar("T")
DIGEST_CHARS = 16
KEY_CHARS = 12


def _update(h: Any, tensor: torch.Tensor) -> None:
    t = torch.as_tensor(tensor).detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)};".encode())
    h.update(t.flatten().view(torch.uint8).numpy())


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (first 16 hex digits) of the dtypes, shapes and values of ``tensors``, in order."""
    h = hashlib.sha256()
    for tensor in tensors:
        _update(h, tensor)
    return h.hexdigest()[:DIGEST_CHARS]


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a network's class name and ``state_dict`` (names, dtypes, shapes, values)."""
    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__};".encode())
    for name, tensor in module.state_dict().items():
        h.update(f"{name};".encode())
        _update(h, tensor)
    return h.hexdigest()[:DIGEST_CHARS]


def content_key(*parts: Any) -> str:
    """SHA-256 (first 12 hex digits, a file name part) of JSON-ready ``parts`` (digests, parameters); dict keys
    sorted."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:KEY_CHARS]


def cached(folder: str | Path | None, name: str, key: str, make: Callable[[], T]) -> T:
    """``make()``, stored as ``folder/<name>_<key>.pt`` (written atomically) and read from there when present.

    ``folder=None`` disables the cache. Entries are read with ``weights_only=True`` (tensors, numbers, strings,
    lists and dicts of them).
    """
    if folder is None:
        return make()
    path = Path(folder) / f"{name}_{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    value = make()
    atomic_write(path, lambda handle: torch.save(value, handle))
    return value
