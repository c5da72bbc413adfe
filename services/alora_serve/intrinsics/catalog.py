"""The installed intrinsics: adapters found in an adapter library, with their io.yaml.

A library holds one directory per intrinsic, in either of IBM's layouts:
``<intrinsic>/<alora|lora>/<base model>/`` (older) or ``<intrinsic>/<base model>/<alora|lora>/``
(newer). The adapter directory's ``io.yaml`` defines the intrinsic; without one, a built-in
definition of the same name does. aLoRA is preferred when both kinds are installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alora_serve.adapters import AdapterSpec, read_adapter
from alora_serve.errors import NotFoundError
from alora_serve.intrinsics.builtins import (
    NEEDS_DOCUMENTS,
    builtin_config,
    builtin_description,
    builtin_names,
)
from alora_serve.intrinsics.call import AdapterInfo, IntrinsicInfo
from alora_serve.intrinsics.io_config import IOConfig, load_io_config
from alora_serve.intrinsics.rewrite import instruction_fields

IO_YAML = "io.yaml"
KINDS = ("alora", "lora")


class CatalogError(ValueError):
    """An adapter library that cannot be served as it is (names the directory)."""


class UnknownIntrinsicError(NotFoundError):
    reason = "UNKNOWN_INTRINSIC"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(
            f"unknown intrinsic {name!r}; installed: {sorted(known)}", ("intrinsic", name)
        )
        self.name = name


@dataclass(frozen=True)
class Intrinsic:
    name: str
    adapter: AdapterSpec
    config: IOConfig
    description: str = ""

    @property
    def requires_documents(self) -> bool:
        tags_documents = "documents" in (self.config.sentence_boundaries or {})
        return tags_documents or self.name in NEEDS_DOCUMENTS

    def describe(self) -> IntrinsicInfo:
        return IntrinsicInfo(
            name=self.name,
            description=self.description,
            adapter=AdapterInfo(kind=self.adapter.kind),
            arguments=instruction_fields(self.config),
            requires_documents=self.requires_documents,
            response_format=self.config.response_format,
            result_schema=self.config.result_schema,
        )


class Catalog:
    def __init__(self, intrinsics: Sequence[Intrinsic]) -> None:
        self._intrinsics = {i.name: i for i in intrinsics}
        if len(self._intrinsics) != len(intrinsics):
            raise CatalogError(f"duplicate intrinsic names in {[i.name for i in intrinsics]}")

    @classmethod
    def from_library(cls, root: Path | str, base_model: str) -> Catalog:
        root = Path(root)
        if not root.is_dir():
            raise CatalogError(f"adapter library {root} is not a directory")
        found = [
            _load(directory.name, adapter_dir)
            for directory in sorted(root.iterdir())
            if directory.is_dir() and (adapter_dir := find_adapter_dir(directory, base_model))
        ]
        return cls(found)

    def get(self, name: str) -> Intrinsic:
        intrinsic = self._intrinsics.get(name)
        if intrinsic is None:
            raise UnknownIntrinsicError(name, self._intrinsics)
        return intrinsic

    def names(self) -> list[str]:
        return sorted(self._intrinsics)

    def subset(self, names: Iterable[str]) -> Catalog:
        return Catalog([self.get(name) for name in names])

    def adapters(self) -> list[AdapterSpec]:
        return [self._intrinsics[name].adapter for name in self.names()]

    def describe(self) -> list[IntrinsicInfo]:
        return [self._intrinsics[name].describe() for name in self.names()]


def find_adapter_dir(intrinsic_dir: Path, base_model: str) -> Path | None:
    """The intrinsic's adapter for ``base_model`` in either layout (names compared without
    case), aLoRA first; None if the intrinsic has none for this base model."""
    for kind in KINDS:
        for base_dir in _children_named(intrinsic_dir, base_model):  # newer layout
            if (base_dir / kind).is_dir():
                return base_dir / kind
        for path in _children_named(intrinsic_dir / kind, base_model):  # older layout
            if path.is_dir():
                return path
    return None


def _children_named(parent: Path, name: str) -> list[Path]:
    if not parent.is_dir():
        return []
    return [child for child in parent.iterdir() if child.name.lower() == name.lower()]


def _load(name: str, adapter_dir: Path) -> Intrinsic:
    io_yaml = adapter_dir / IO_YAML
    builtin = name in builtin_names()
    if io_yaml.is_file():
        config = load_io_config(io_yaml)
    elif builtin:
        config = builtin_config(name)
    else:
        raise CatalogError(
            f"{adapter_dir} has no {IO_YAML} and {name!r} is not a built-in intrinsic "
            f"({builtin_names()}); add an {IO_YAML} that defines it"
        )
    description = builtin_description(name) if builtin else ""
    return Intrinsic(name, read_adapter(adapter_dir, name), config, description)
