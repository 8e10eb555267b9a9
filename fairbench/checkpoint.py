"""Mid-seed checkpoints: the state of a training loop, saved and restored bit for bit.

A seed interrupted by a signal, a kill, a crash or a SLURM pre-emption continues, when the
same command runs again, from its last checkpoint instead of from scratch, and ends with the
same trajectory and metrics as a run that was never interrupted (the wall-clock columns
aside). :func:`fairbench.training.train_group` writes ``<run_dir>/checkpoint_<seeds>.pkl``
(the group's seeds joined by ``_``) every ``checkpoint_every`` iterations and when a signal
stops it, and deletes it when the group ends.

What is saved is found by walking the object graph of the algorithm (:func:`capture`): the
algorithm's attributes and, through ``algo.oracle``, the oracle's (its sampler's
permutations and positions, its counters), through nested plain objects, dicts, lists and
tuples. Saved are numpy arrays (copies), torch tensors (copies), Python and numpy scalars,
strings, and the states of random generators (``np.random.Generator``,
``np.random.RandomState``, ``torch.Generator``). Not walked: modules, functions, methods,
classes, torch modules (their parameters are the oracle's ``x``, which is saved), objects
the caller names as shared (the data arrays every seed reads) and anything else (compiled
kernels, locks): they are what a fresh ``setup`` and ``bind_variant`` rebuild identically.

:func:`restore` writes a snapshot back into a freshly set-up algorithm: arrays and tensors
**in place** where shape and dtype match (``np.copyto``), so that every view of them stays
valid (``oracle.x`` is a view of the torch model's flat parameter buffer, a fast variant's
``algo._rows`` are views of its state arrays); scalars and generator states by assignment;
entries that a fresh object lacks are added, entries the snapshot lacks are removed.

A checkpoint file also records the code identity (:func:`fairbench.provenance.code_identity`)
and the config it ran: one that does not match the current run is ignored (the run
directory's rules already refuse a resume with other code or another config,
:mod:`fairbench.rundir`). Files are written atomically (:mod:`fairbench.recorder`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.array_utils import byte_bounds
from omegaconf import DictConfig, OmegaConf

from fairbench import provenance
from fairbench.recorder import atomic_write_bytes
from fairbench.rundir import RESUME_FREE_KEYS

#: checkpoint format; a file of another format is ignored
FORMAT = 1
PREFIX = "checkpoint_"

#: immutable values saved as they are
_ATOMS = (bool, int, float, complex, str, bytes, type(None), np.generic)
#: never walked: code and torch's modules (their parameters are aliased by ``oracle.x``)
_OPAQUE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           type, torch.nn.Module, property, staticmethod, classmethod)


class _Skip:
    """Marks an entry not saved: restore leaves the current one alone."""

    def __repr__(self) -> str:
        return "SKIP"

    def __reduce__(self) -> str:
        return "SKIP"  # unpickles as the module's one instance


SKIP = _Skip()


@dataclass
class _Array:
    value: np.ndarray


@dataclass
class _Tensor:
    value: torch.Tensor


@dataclass
class _RandomState:
    kind: str  # "numpy" (Generator), "legacy" (RandomState), "torch"
    state: Any
    bit_generator: type | None = None


@dataclass
class _Object:
    cls: type
    attributes: dict


@dataclass
class _Container:
    cls: type  # dict, list or tuple
    items: Any  # dict of entries, or list of entries


@dataclass
class _Same:
    """An array or tensor equal, bit for bit, to its value after a fresh setup (not saved)."""


@dataclass
class _Alias:
    """An object already saved at another place in the graph (restored there)."""

    path: tuple


@dataclass
class Walker:
    """One capture: the ids of objects not to walk, and the objects walked so far."""

    shared: set[int] = field(default_factory=set)
    baseline: dict[tuple, Any] = field(default_factory=dict)
    seen: dict[int, tuple] = field(default_factory=dict)
    keep: list = field(default_factory=list)  # keeps walked objects alive, so ids stay unique

    def capture(self, obj: Any, path: tuple = ()) -> Any:
        if isinstance(obj, _ATOMS):
            return obj
        key = id(obj)
        if key in self.shared or isinstance(obj, _OPAQUE):
            return SKIP
        if key in self.seen:
            return _Alias(self.seen[key])
        self.seen[key] = path
        self.keep.append(obj)
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                return SKIP
            return _Same() if _identical(self.baseline.get(path), obj) else _Array(obj.copy())
        if isinstance(obj, torch.Tensor):
            value = obj.detach()
            base = self.baseline.get(path)
            if isinstance(base, torch.Tensor) and _identical(base.numpy(), value.cpu().numpy()):
                return _Same()
            return _Tensor(value.clone())
        if isinstance(obj, np.random.Generator):
            return _RandomState("numpy", obj.bit_generator.state, type(obj.bit_generator))
        if isinstance(obj, np.random.RandomState):
            return _RandomState("legacy", obj.get_state())
        if isinstance(obj, torch.Generator):
            return _RandomState("torch", obj.get_state())
        if type(obj) in (dict, list, tuple):
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            entries = {k: self.capture(v, path + (k,)) for k, v in items}
            if isinstance(obj, dict):
                return _Container(dict, entries)
            return _Container(type(obj), [entries[i] for i in range(len(obj))])
        attributes = getattr(obj, "__dict__", None)
        if attributes is None or not _ours(type(obj)):
            return SKIP
        return _Object(type(obj), {k: self.capture(v, path + (k,)) for k, v in attributes.items()})


def _ours(cls: type) -> bool:
    """A class of fairbench's (or derived from one): its instances keep their state in
    ``__dict__``. Other libraries' objects (numba dispatchers, torch internals) are not walked."""
    return any(c.__module__.split(".")[0] == "fairbench" for c in cls.__mro__)


def _bounds(value: Any) -> tuple[int, int] | None:
    """The byte range an array's or tensor's elements occupy (``None`` when empty)."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        value = value.detach().numpy() if value.device.type == "cpu" else None
        if value is None:
            return None
    if not isinstance(value, np.ndarray) or value.size == 0:
        return None
    return byte_bounds(value)


def data_aliases(obj: Any, data: list) -> dict[int, Any]:
    """The arrays and tensors reachable from ``obj`` (walked as :func:`capture` walks) whose
    elements lie inside one of the ``data`` arrays or tensors, by id: views of the shared data
    (an oracle's numpy view of a training tensor, say), which no step writes. A warm-up copy
    or a checkpoint shares them instead of copying gigabytes of data."""
    ranges = [r for r in map(_bounds, data) if r is not None]
    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, _ATOMS) or isinstance(item, _OPAQUE) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (np.ndarray, torch.Tensor)):
            span = _bounds(item)
            if span is not None and any(lo <= span[0] and span[1] <= hi for lo, hi in ranges):
                found[id(item)] = item
        elif type(item) in (dict, list, tuple):
            stack.extend(item.values() if isinstance(item, dict) else item)
        elif getattr(item, "__dict__", None) is not None and _ours(type(item)):
            stack.extend(vars(item).values())
    return found


def _identical(base: Any, value: np.ndarray) -> bool:
    """Whether ``value`` equals ``base`` bit for bit (same dtype and shape; NaNs and signed
    zeros included)."""
    if not isinstance(base, np.ndarray) or base.dtype != value.dtype or base.shape != value.shape:
        return False
    return np.array_equal(np.ascontiguousarray(base).view(np.uint8), np.ascontiguousarray(value).view(np.uint8))


def capture(obj: Any, shared: set[int] | None = None, baseline: dict[tuple, Any] | None = None) -> Any:
    """A snapshot of ``obj``'s state (module doc); ``shared``: ids of objects not walked;
    ``baseline`` (of :func:`arrays`): the arrays of a fresh setup, by path, that an array
    equal to it need not save (a fresh setup before :func:`restore` recreates them: the
    training data's derived arrays, constant buffers)."""
    return Walker(set(shared or ()), dict(baseline or {})).capture(obj)


def arrays(snapshot: Any, path: tuple = ()) -> dict[tuple, Any]:
    """The arrays and tensors of ``snapshot`` by path (the ``baseline`` of :func:`capture`)."""
    found: dict[tuple, Any] = {}
    if isinstance(snapshot, (_Array, _Tensor)):
        found[path] = snapshot.value
    elif isinstance(snapshot, _Object):
        for key, entry in snapshot.attributes.items():
            found.update(arrays(entry, path + (key,)))
    elif isinstance(snapshot, _Container):
        items = snapshot.items.items() if snapshot.cls is dict else enumerate(snapshot.items)
        for key, entry in items:
            found.update(arrays(entry, path + (key,)))
    return found


def _restore(current: Any, snap: Any, done: dict, path: tuple) -> Any:
    """The value to hold ``snap``: ``current`` updated in place where possible, else new.
    ``done`` maps the paths restored so far to their values (an alias resolves there)."""
    if isinstance(snap, _Alias):
        return done[snap.path]
    if isinstance(snap, _Container):
        if snap.cls is dict:
            target = done[path] = current if type(current) is dict else {}
            for key in [k for k in target if k not in snap.items]:
                del target[key]
            for key, entry in snap.items.items():
                if key in target or not _kept(entry):
                    target[key] = _restore(target.get(key), entry, done, path + (key,))
            return target
        old = list(current) if type(current) is snap.cls else []
        target = done[path] = current if type(current) is list and snap.cls is list else []
        values = [_restore(old[i] if i < len(old) else None, entry, done, path + (i,))
                  for i, entry in enumerate(snap.items)]
        if snap.cls is list:
            target[:] = values
            return target
        done[path] = tuple(values)
        return done[path]
    if isinstance(snap, _Object):
        target = done[path] = current if type(current) is snap.cls else object.__new__(snap.cls)
        attributes = vars(target)
        for key in [k for k in attributes if k not in snap.attributes]:
            del attributes[key]
        for key, entry in snap.attributes.items():
            if key in attributes or not _kept(entry):
                attributes[key] = _restore(attributes.get(key), entry, done, path + (key,))
        return target
    done[path] = value = _restore_leaf(current, snap)
    return value


def _kept(snap: Any) -> bool:
    """Whether ``snap`` keeps the current entry (not saved, or as after a fresh setup): where
    the current object lacks the entry, it stays absent."""
    return snap is SKIP or isinstance(snap, _Same)


def _restore_leaf(current: Any, snap: Any) -> Any:
    if snap is SKIP or isinstance(snap, _Same):
        return current
    if isinstance(snap, _Array):
        value = snap.value
        if (isinstance(current, np.ndarray) and current.shape == value.shape and current.dtype == value.dtype
                and current.flags.writeable):
            np.copyto(current, value)
            return current
        return value.copy()
    if isinstance(snap, _Tensor):
        value = snap.value
        if isinstance(current, torch.Tensor) and current.shape == value.shape and current.dtype == value.dtype:
            with torch.no_grad():
                current.copy_(value)
            return current
        return value.clone()
    if isinstance(snap, _RandomState):
        if snap.kind == "numpy":
            if not isinstance(current, np.random.Generator) or type(current.bit_generator) is not snap.bit_generator:
                current = np.random.Generator(snap.bit_generator())
            current.bit_generator.state = snap.state
        elif snap.kind == "legacy":
            current = current if isinstance(current, np.random.RandomState) else np.random.RandomState()
            current.set_state(snap.state)
        else:
            current = current if isinstance(current, torch.Generator) else torch.Generator()
            current.set_state(snap.state)
        return current
    return snap  # an atom


def restore(obj: Any, snapshot: Any) -> Any:
    """Write ``snapshot`` (of :func:`capture`) back into ``obj``, in place (module doc)."""
    return _restore(obj, snapshot, {}, ())


def checkpoint_every(cfg: DictConfig) -> int:
    """``checkpoint_every`` (0: no checkpoints; ``null`` reads as 0)."""
    return int(cfg.get("checkpoint_every") or 0)


def preemption_signal() -> int | None:
    """The signal with which submitit announces a pre-emption or time-out of the job this
    process runs (``SUBMITIT_PREEMPT_SIGNAL``, default SIGUSR2); ``None`` outside a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


# -- checkpoint files ------------------------------------------------------------------------------
def file_name(seeds: list[int]) -> str:
    """``checkpoint_<seeds joined by _>.pkl``; a long group is named by its first and last
    seed, its size and a hash of its seeds (file names have a length limit)."""
    joined = "_".join(str(seed) for seed in seeds)
    if len(joined) > 120:
        digest = hashlib.sha256(joined.encode()).hexdigest()[:12]
        joined = f"{seeds[0]}-{seeds[-1]}_{len(seeds)}seeds_{digest}"
    return f"{PREFIX}{joined}.pkl"


def identity(cfg: DictConfig) -> dict:
    """What a checkpoint must match to be used: the code (:func:`provenance.code_identity`)
    and the config as it ran, without the keys a resumption may change
    (:data:`fairbench.rundir.RESUME_FREE_KEYS`, ``checkpoint_every``)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in (*RESUME_FREE_KEYS, "checkpoint_every"):
        config.pop(key, None)
    return {"code": provenance.code_identity(), "config": config}


def matches(recorded: dict, current: dict) -> bool:
    """Whether a checkpoint's identity matches the current run's."""
    return (recorded.get("config") == current["config"]
            and not provenance.code_differences(recorded.get("code") or {}, current["code"]))


def read(path: Path) -> dict | None:
    """The checkpoint in ``path``, or ``None`` when absent, unreadable or of another format."""
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is not a checkpoint: start afresh
        return None
    return payload if isinstance(payload, dict) and payload.get("format") == FORMAT else None


def resumable_groups(run_dir: Path, cfg: DictConfig, pending: list[int], finished: list[int]) -> list[list[int]]:
    """The seed groups of the checkpoints in ``run_dir`` that this run continues: those of a
    matching config and code whose seeds are all in ``cfg.seeds``, whose seeds still training
    are pending or finished (a seed that finished after the checkpoint is trained to its end
    again, to the same files), with at least one of them pending, and no seed in an earlier
    group. In file-name order."""
    seeds, pending_set, allowed = set(cfg.seeds), set(pending), set(pending) | set(finished)
    current, groups, taken = None, [], set()
    for path in sorted(Path(run_dir).glob(f"{PREFIX}*.pkl")):
        payload = read(path)
        if payload is None or path.name != file_name(payload["seeds"]):
            continue
        group, active = list(payload["seeds"]), set(payload["loop"]["active_seeds"])
        if not (set(group) <= seeds and active <= allowed and active & pending_set) or set(group) & taken:
            continue
        current = current or identity(cfg)
        if matches(payload["identity"], current):
            groups.append(group)
            taken |= set(group)
    return groups


class GroupCheckpoint:
    """The checkpoint of one seed group: ``<run_dir>/checkpoint_<seeds>.pkl``.

    ``algo`` is the group's algorithm after ``setup`` and ``bind_variant`` (its oracle is
    reached through it); ``shared`` the ids of objects not saved (the data's arrays)."""

    def __init__(self, run_dir: Path, seeds: list[int], cfg: DictConfig, algo: Any, shared: set[int]):
        self.path = Path(run_dir) / file_name(seeds)
        self.seeds, self.algo, self.shared = list(seeds), algo, shared
        self.identity = identity(cfg)
        self.baseline = arrays(capture(algo, shared))

    def load(self) -> dict | None:
        """The loop's record of a matching checkpoint of this group, after restoring the
        algorithm, its oracle and the global random states from it; ``None`` (nothing
        restored) when there is none."""
        payload = read(self.path)
        if payload is None or payload["seeds"] != self.seeds or not matches(payload["identity"], self.identity):
            return None
        restore(self.algo, payload["algo"])
        torch.set_rng_state(payload["rng"]["torch"])
        np.random.set_state(payload["rng"]["numpy"])
        return payload["loop"]

    def save(self, loop: dict) -> None:
        """Write the algorithm's state and the loop's record ``loop`` (atomically)."""
        payload = {
            "format": FORMAT,
            "seeds": self.seeds,
            "identity": self.identity,
            "loop": loop,
            "algo": capture(self.algo, self.shared, self.baseline),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
        }
        atomic_write_bytes(self.path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
