"""Build the Ray Serve application of a topology: validate everything, then bind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ray import serve

from alora_serve.disagg.prefill_service import LeaseLimits
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.model import resolve_model
from alora_serve.topology.config import TopologyConfig
from alora_serve.topology.ingress import IntrinsicsIngress
from alora_serve.topology.prefill_deployment import PrefillDeployment
from alora_serve.topology.routing import locality_router_config
from alora_serve.topology.worker import IntrinsicWorker

INGRESS = "ingress"


def resolve_library(config: TopologyConfig, progress: Callable[[str], None] = print) -> Path:
    """The configured adapter library, or seeded stand-ins of the built-in intrinsics
    (made once in the cache) when none is given."""
    if config.library is not None:
        return Path(config.library)
    from alora_serve.intrinsics.builtins import builtin_names
    from alora_serve.intrinsics.synthetic_library import make_library
    from alora_serve.paths import cache_root

    names = config.intrinsics or builtin_names()
    progress(f"No adapter library given: seeded stand-in adapters for {', '.join(names)}")
    return make_library(resolve_model(config.model), cache_root() / "demo-intrinsics", names)


def build_app(config: TopologyConfig, library: Path) -> serve.Application:
    base_model = resolve_model(config.model)  # fail fast, before Ray starts anything
    catalog = Catalog.from_library(library, base_model.name)
    names = config.intrinsics or catalog.names()
    catalog = catalog.subset(names)
    if config.topology == "colocated":
        engine = config.colocated.model_copy(update={"model": config.model})
        worker = IntrinsicWorker.options(
            name="colocated",
            request_router_config=locality_router_config(),
            **config.colocated_scaling.deployment_options(),
        ).bind(engine, str(library), names, None)
        workers, routes = {"colocated": worker}, dict.fromkeys(names, "colocated")
        base = worker
    else:
        prefill = PrefillDeployment.options(
            name="prefill",
            request_router_config=locality_router_config(),
            **config.prefill.scaling.deployment_options(),
        ).bind(
            config.prefill.engine.model_copy(update={"model": config.model}),
            LeaseLimits(config.prefill.max_leases, config.prefill.lease_ttl_s),
        )
        workers, routes, base = {}, {}, prefill
        for group in config.decode_groups(catalog.names()):
            worker_name = f"decode-{group.name}"
            workers[worker_name] = IntrinsicWorker.options(
                name=worker_name,
                request_router_config=locality_router_config(),
                **group.scaling.deployment_options(),
            ).bind(group.engine_config(config.model), str(library), group.intrinsics, prefill)
            routes.update(dict.fromkeys(group.intrinsics, worker_name))
    return IntrinsicsIngress.options(name=INGRESS, ray_actor_options={"num_cpus": 0}).bind(
        workers, routes, catalog.describe(), base, base_model.name, config.call_timeout_s
    )
