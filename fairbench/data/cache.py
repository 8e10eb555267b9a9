"""On-disk cache of prepared arrays, so repeated runs skip parsing and encoding.

An entry is keyed by a hash of everything that shapes the arrays (the normalised dataset
config, the input file's path, size and mtime, and :data:`FORMAT_VERSION`), so a changed
config or input simply misses. Entries are written to a temporary file in the cache folder
and renamed into place, so concurrent runs never see half-written entries. Each entry
carries a SHA-256 of its payload; an entry that is truncated, corrupt or unreadable is
ignored with a warning and rebuilt. The cache is a convenience: no cache error ever stops a
run.

File layout: ``MAGIC`` (8 bytes), SHA-256 of the rest (32 bytes), header length (8 bytes),
a JSON header (names, provenance, row counts, and dtype/shape/offset of the splits' arrays
and of the training columns' mean and standard deviation; one-hot features are stored as
their :class:`~fairbench.data.compact.CompactX` parts: each split's level indices and
numeric columns, and once the column values and block starts the splits share), then the
raw array bytes, each 64-byte aligned. Loading checks the digest by reading the file in
blocks, then memory-maps it copy-on-write and views the arrays on the mapping: no copy is
made, pages are read from the file only when touched, and processes that load the same
entry (the jobs of a parallel sweep) share those pages through the page cache, so no
dataset is held once per job (all states one-hot: about 30 MB). Arrays stay writable; a
write changes the process's own copy of that page, never the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.data.paths import user_cache_home
from fairbench.data.compact import CompactX
from fairbench.data.prepared import PreparedData, Split

CACHE_DIR_ENV = "FAIRBENCH_CACHE_DIR"
FORMAT_VERSION = 5
MAGIC = b"FBDATA05"
SUFFIX = ".fbdata"
_DIGEST = 32
_LENGTH = struct.Struct("<Q")
_ALIGN = 64
_SHARED = ("starts", "numeric_columns", "off", "on")  # a CompactX's arrays its splits share
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$FAIRBENCH_CACHE_DIR``, else ``<user cache>/fairbench/arrays``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else user_cache_home() / "fairbench" / "arrays"


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable ``parts`` plus the format version."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_path(key: str) -> Path:
    return cache_dir() / f"{key}{SUFFIX}"


def load(key: str) -> PreparedData | None:
    """The cached data for ``key``, or None if absent, unreadable or corrupt."""
    path = entry_path(key)
    try:
        with path.open("rb") as handle:
            return _decode(handle)
    except FileNotFoundError:
        return None
    except OSError as err:
        _log.warning("ignoring unreadable cache entry %s (%s); rebuilding", path, err)
        return None
    except (ValueError, KeyError, TypeError, struct.error) as err:
        _log.warning("ignoring corrupt cache entry %s (%s); rebuilding", path, err)
        return None


def store(key: str, data: PreparedData) -> None:
    """Write ``data`` atomically under ``key``; a failure is logged, never raised."""
    directory = cache_dir()
    tmp_name = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        chunks = _encode(data)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{key}-", suffix=".tmp",
                                         delete=False) as handle:
            tmp_name = handle.name
            handle.writelines(chunks)
        os.replace(tmp_name, entry_path(key))
    except OSError as err:
        _log.warning("could not write the data cache in %s (%s)", directory, err)
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def _encode(data: PreparedData) -> list[bytes | memoryview]:
    """The entry as a list of byte chunks: magic, digest, then the payload."""
    arrays = []
    for name, split in data.splits().items():
        if isinstance(split.X, CompactX):
            arrays += [(f"{name}_X_codes", split.X.codes), (f"{name}_X_numeric", split.X.numeric)]
        else:
            arrays.append((f"{name}_X", split.X))
        arrays += [(f"{name}_y", split.y), (f"{name}_group", split.group)]
    if isinstance(data.train.X, CompactX):  # (the splits share them)
        arrays += [(f"X_{part}", getattr(data.train.X, part)) for part in _SHARED]
    arrays = [(name, np.ascontiguousarray(array)) for name, array in arrays]
    if data.scale is not None:
        arrays += [("scale_mean", np.ascontiguousarray(data.scale[0])), ("scale_std", np.ascontiguousarray(data.scale[1]))]
    table, offset = [], 0
    for name, array in arrays:
        table.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                      "offset": offset})
        offset += _aligned(array.nbytes)
    meta = {"feature_names": data.feature_names, "group_names": data.group_names,
            "synthetic": data.synthetic, "source": data.source, "rows": data.rows,
            "arrays": table}
    header = json.dumps(meta).encode()
    start = len(MAGIC) + _DIGEST + _LENGTH.size + len(header)
    chunks: list[bytes | memoryview] = [_LENGTH.pack(len(header)), header,
                                        bytes(_aligned(start) - start)]
    for _, array in arrays:
        chunks += [memoryview(array).cast("B") if array.nbytes else b"", bytes(_aligned(array.nbytes) - array.nbytes)]
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return [MAGIC, digest.digest(), *chunks]


_BLOCK = 1 << 24


def _decode(handle) -> PreparedData:
    """Check the entry's digest block by block, then view its arrays on a copy-on-write
    memory map of the file (see the module docstring)."""
    size = os.fstat(handle.fileno()).st_size
    body = len(MAGIC) + _DIGEST
    head = handle.read(body + _LENGTH.size)
    if len(head) < body + _LENGTH.size or head[: len(MAGIC)] != MAGIC:
        raise ValueError("not a fairbench data cache entry")
    digest = hashlib.sha256(head[body:])
    while block := handle.read(_BLOCK):
        digest.update(block)
    if digest.digest() != head[len(MAGIC):body]:
        raise ValueError("checksum mismatch")
    (length,) = _LENGTH.unpack_from(head, body)
    header_end = body + _LENGTH.size + length
    if header_end > size:
        raise ValueError("truncated header")
    handle.seek(body + _LENGTH.size)
    meta = json.loads(handle.read(length))
    start = _aligned(header_end)
    mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    arrays = {}
    for entry in meta["arrays"]:
        shape = tuple(entry["shape"])
        arrays[entry["name"]] = np.frombuffer(mapping, dtype=np.dtype(entry["dtype"]),
                                              count=int(np.prod(shape)),
                                              offset=start + entry["offset"]).reshape(shape)
    shared = {part: arrays[f"X_{part}"] for part in _SHARED} if "X_off" in arrays else None
    splits = {name: Split(X=arrays[f"{name}_X"] if shared is None else
                          CompactX(arrays[f"{name}_X_codes"], arrays[f"{name}_X_numeric"], **shared),
                          y=arrays[f"{name}_y"], group=arrays[f"{name}_group"])
              for name in ("train", "val", "test")}
    return PreparedData(**splits, feature_names=list(meta["feature_names"]),
                        group_names=list(meta["group_names"]), synthetic=bool(meta["synthetic"]),
                        source=str(meta["source"]), rows=dict(meta.get("rows") or {}),
                        scale=(arrays["scale_mean"], arrays["scale_std"]) if "scale_mean" in arrays else None)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN
