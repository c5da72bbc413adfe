"""The Ray Serve application builder that a RayService's ``serveConfigV2`` imports.

``import_path: alora_serve.topology.serve_app:app_builder``, with ``args: {topology: ...}``
holding a whole ``TopologyConfig`` (the Helm chart renders it from its values). Ray Serve
validates ``args`` into ``ServeArgs`` before calling the builder, so a bad topology fails the
deployment with pydantic's message naming the field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from ray import serve

from alora_serve.topology.app import build_app, resolve_library
from alora_serve.topology.config import TopologyConfig

IMPORT_PATH = f"{__name__}:app_builder"


class ServeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topology: TopologyConfig


def app_builder(args: ServeArgs) -> serve.Application:
    return build_app(args.topology, resolve_library(args.topology))
