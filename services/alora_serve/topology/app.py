"""Build the Ray Serve application of a topology: validate everything, then bind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import serve

from alora_serve.engine import EngineConfig
from alora_serve.gateway.auth import TokenTable
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.model import resolve_model
from alora_serve.prefill.leases import LeaseLimits
from alora_serve.topology.config import IngressSettings, Scaling, TopologyConfig
from alora_serve.topology.ingress import IntrinsicsIngress
from alora_serve.topology.prefill_deployment import PrefillDeployment
from alora_serve.topology.routing import locality_router_config
from alora_serve.topology.worker import IntrinsicWorker

INGRESS = "ingress"
# workers by deployment name, intrinsic -> worker, the deployment that owns conversations
_Graph = tuple[dict[str, Any], dict[str, str], Any]


def resolve_library(config: TopologyConfig, progress: Callable[[str], None] = print) -> Path:
    """The configured adapter library, or the embedded one when none is given: the
    intrinsics trained for the model that ship in the package, seeded stand-ins for the
    rest (made once in the cache)."""
    if config.library is not None:
        return Path(config.library)
    from alora_serve.intrinsics.builtins import builtin_names
    from alora_serve.intrinsics.embedded_library import embedded_library
    from alora_serve.paths import cache_root

    names = config.intrinsics or builtin_names()
    checkpoint = resolve_model(config.model)
    root, trained = embedded_library(checkpoint, cache_root() / "demo-intrinsics", names)
    stand_ins = [name for name in names if name not in trained]
    progress(
        "No adapter library given: "
        + (f"trained {', '.join(trained)} (docs/intrinsics-quality.md); " if trained else "")
        + (f"seeded stand-in adapters for {', '.join(stand_ins)}" if stand_ins else "")
    )
    return root


def build_app(config: TopologyConfig, library: Path) -> serve.Application:
    base_model = resolve_model(config.model)  # fail fast, before Ray starts anything
    catalog = Catalog.from_library(library, base_model.name)
    catalog = catalog.subset(config.intrinsics or catalog.names())
    build = _colocated if config.topology == "colocated" else _disaggregated
    workers, routes, base = build(config, str(library), catalog.names())
    gateway = config.gateway
    settings = IngressSettings(
        model_name=base_model.name,
        call_timeout_s=config.call_timeout_s,
        gateway=gateway,
        # only token digests travel to the ingress replica
        tokens=TokenTable.load(gateway.tokens_file if gateway else None),
        observability=config.observability,
    )
    resources = dict(gateway.resources) if gateway else {}
    ingress = IntrinsicsIngress.options(
        name=INGRESS,
        ray_actor_options={"num_cpus": 0, "resources": resources},
        graceful_shutdown_timeout_s=config.shutdown_timeout_s,
        # HTTP calls past the admission limit must reach the ingress to be refused (429)
        # at once rather than wait in Serve's proxy. The proxy's queue stays bounded; a
        # burst waits there for a moment while the router assigns it (beyond: 503).
        max_ongoing_requests=2 * settings.max_in_flight,
        max_queued_requests=4 * settings.max_in_flight,
    )
    return ingress.bind(workers, routes, catalog.describe(), base, settings)


def _engine(engine: EngineConfig, config: TopologyConfig) -> EngineConfig:
    update = {"model": config.model, "vllm_metrics": config.observability.metrics}
    return engine.model_copy(update=update)


def _colocated(config: TopologyConfig, library: str, names: list[str]) -> _Graph:
    worker = _deploy(IntrinsicWorker, "colocated", config.colocated_scaling, config).bind(
        _engine(config.colocated, config), library, names, None, config.observability
    )
    return {"colocated": worker}, dict.fromkeys(names, "colocated"), worker


def _disaggregated(config: TopologyConfig, library: str, names: list[str]) -> _Graph:
    prefill = _deploy(PrefillDeployment, "prefill", config.prefill.scaling, config).bind(
        _engine(config.prefill.engine, config),
        LeaseLimits(config.prefill.max_leases, config.prefill.lease_ttl_s),
        config.observability,
    )
    workers, routes = {}, {}
    for group in config.decode_groups(names):
        name = f"decode-{group.name}"
        workers[name] = _deploy(IntrinsicWorker, name, group.scaling, config).bind(
            _engine(group.engine_config(), config),
            library,
            group.intrinsics,
            prefill,
            config.observability,
        )
        routes.update(dict.fromkeys(group.intrinsics, name))
    return workers, routes, prefill


def _deploy(
    deployment: serve.Deployment, name: str, scaling: Scaling, config: TopologyConfig
) -> serve.Deployment:
    """A deployment with its scaling options and KV-locality, session-affinity routing."""
    return deployment.options(
        name=name,
        request_router_config=locality_router_config(),
        graceful_shutdown_timeout_s=config.shutdown_timeout_s,
        **scaling.deployment_options(),
    )
