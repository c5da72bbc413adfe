"""The bytes of the KV store: fixed-size slots in a shared-memory file.

Slot s holds one KV block for every layer, flattened: ``data[s, layer, :]``. Beside it,
``tags[s]`` names the content (a hash tag of the block key; 0 while being written), so a
reader verifies what it copies instead of trusting that a slot was not reused.
The owner creates the files; engine workers (other processes, possibly of another
engine on the same host) open them by path: the spec and the producing engine's KV
fingerprint lie beside the data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from alora_serve.kv.fingerprint import KVFingerprint

SHM_DIR = Path("/dev/shm")
ARENA_PREFIX = "alora-kv-"
EMPTY_TAG = 0

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ArenaSpec:
    path: str
    num_slots: int
    num_layers: int
    block_numel: int  # elements of one layer's KV block (K and V)
    dtype: str

    @classmethod
    def sized(
        cls, path: str, capacity_bytes: int, num_layers: int, block_numel: int, dtype: str
    ) -> ArenaSpec:
        """As many slots as fit in ``capacity_bytes`` (at least one)."""
        slot_bytes = num_layers * block_numel * _DTYPES[dtype].itemsize
        if capacity_bytes < slot_bytes:
            raise ValueError(
                f"a KV store of {capacity_bytes} bytes cannot hold one block "
                f"({slot_bytes} bytes); give it more room"
            )
        return cls(path, capacity_bytes // slot_bytes, num_layers, block_numel, dtype)

    @property
    def slot_bytes(self) -> int:
        return self.num_layers * self.block_numel * _DTYPES[self.dtype].itemsize

    def to_dict(self) -> dict:
        return asdict(self)


class SlotArena:
    def __init__(self, spec: ArenaSpec, data: torch.Tensor, tags: torch.Tensor) -> None:
        self.spec = spec
        self.data = data
        self.tags = tags

    @classmethod
    def create(cls, spec: ArenaSpec) -> SlotArena:
        remove_stale_arenas(Path(spec.path).parent)
        for path, size in (
            (spec.path, spec.num_slots * spec.slot_bytes),
            (_tags_file(spec.path), 0),
        ):
            with open(path, "wb") as f:
                f.truncate(size or spec.num_slots * 8)  # sparse: pages fill as used
        _write_atomically(_spec_file(spec.path), json.dumps(spec.to_dict()))
        return cls.open(spec)

    @classmethod
    def open_path(cls, path: str) -> SlotArena:
        """Open another engine's arena on this host by its path."""
        return cls.open(ArenaSpec(**json.loads(Path(_spec_file(path)).read_text())))

    @classmethod
    def open(cls, spec: ArenaSpec) -> SlotArena:
        dtype = _DTYPES[spec.dtype]
        numel = spec.num_slots * spec.num_layers * spec.block_numel
        data = torch.from_file(spec.path, shared=True, size=numel, dtype=dtype)
        tags = torch.from_file(
            _tags_file(spec.path), shared=True, size=spec.num_slots, dtype=torch.int64
        )
        return cls(spec, data.view(spec.num_slots, spec.num_layers, spec.block_numel), tags)

    def read_slots(self, slots: Sequence[int]) -> torch.Tensor:
        """A copy of the blocks in ``slots``: [len(slots), layers, block elements]."""
        return self.data[torch.tensor(slots, dtype=torch.long)].clone()

    def write_slots(self, slots: Sequence[int], tags: Sequence[int], blocks: torch.Tensor) -> None:
        """Store ``blocks`` (as read_slots returns them) and tag them; readers never see a
        half-written slot as valid."""
        index = torch.tensor(slots, dtype=torch.long)
        self.tags[index] = EMPTY_TAG
        self.data[index] = blocks.to(self.data.dtype)
        self.tags[index] = torch.tensor(tags, dtype=torch.int64)

    def publish_fingerprint(self, fingerprint: KVFingerprint) -> None:
        """Written by the engine worker that fills this arena, once it knows its KV."""
        _write_atomically(_fingerprint_file(self.spec.path), fingerprint.to_json())

    def fingerprint(self) -> KVFingerprint | None:
        path = Path(_fingerprint_file(self.spec.path))
        return KVFingerprint.from_json(path.read_text()) if path.exists() else None

    def unlink(self) -> None:
        for path in _files(self.spec.path):
            Path(path).unlink(missing_ok=True)


def arena_path(name: str) -> str:
    """A per-process path in shared memory (the pid keeps concurrent engines apart)."""
    base = SHM_DIR if SHM_DIR.is_dir() else Path("/tmp")
    return str(base / f"{ARENA_PREFIX}{os.getpid()}-{name}")


def remove_stale_arenas(directory: Path) -> None:
    """Shared memory outlives a killed owner: free the arenas of processes that are gone."""
    for path in directory.glob(f"{ARENA_PREFIX}*"):
        pid = path.name.removeprefix(ARENA_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tags_file(path: str) -> str:
    return path + ".tags"


def _spec_file(path: str) -> str:
    return path + ".spec.json"


def _fingerprint_file(path: str) -> str:
    return path + ".kv.json"


def _files(path: str) -> tuple[str, ...]:
    return (path, _tags_file(path), _spec_file(path), _fingerprint_file(path))


def _write_atomically(path: str, text: str) -> None:
    partial = f"{path}.{os.getpid()}.partial"
    Path(partial).write_text(text)
    os.replace(partial, path)
