"""The vLLM KV connector that makes stock vLLM compute aLoRA exactly.

vLLM instantiates this class twice, by module path, in spawned processes: once with the
scheduler role (EngineCore) and once with the worker role (model runner). Each role
delegates to its own small class; the per-step metadata is their only channel, and the
store owner's kv_transfer_params are the only input.
"""

from __future__ import annotations

from typing import Any

from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorRole,
)

from alora_serve.kv.connector import shared_base_blocks
from alora_serve.kv.connector.metadata import AloraConnectorMetadata
from alora_serve.kv.connector.scheduler import ConnectorScheduler
from alora_serve.kv.connector.worker import ConnectorWorker
from alora_serve.kv.store.arena import ArenaSpec

CONNECTOR_NAME = "AloraKVConnector"
CONNECTOR_MODULE = __name__
ARENA_KEY = "arena"
KV_MODEL_KEY = "kv_model"  # identity of the base weights whose KV this engine's blocks hold


class AloraKVConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None):
        super().__init__(vllm_config, role, kv_cache_config)
        extra = vllm_config.kv_transfer_config.kv_connector_extra_config
        if role == KVConnectorRole.SCHEDULER:
            shared_base_blocks.install()
            self._scheduler = ConnectorScheduler(vllm_config.cache_config.block_size)
        else:
            self._worker = ConnectorWorker(
                ArenaSpec(**extra[ARENA_KEY]),
                kv_cache_config.num_blocks,
                kv_model=extra[KV_MODEL_KEY],
                block_size=vllm_config.cache_config.block_size,
            )

    # -- scheduler side --------------------------------------------------------------

    def bind_kv_cache_manager(self, kv_cache_manager: Any) -> None:
        super().bind_kv_cache_manager(kv_cache_manager)
        self._scheduler.bind_kv_cache_manager(kv_cache_manager)

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int):
        return self._scheduler.get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int):
        self._scheduler.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: Any) -> AloraConnectorMetadata:
        return self._scheduler.build_connector_meta(scheduler_output)

    def request_finished(self, request: Any, block_ids: list[int]):
        self._scheduler.request_finished(request)
        return False, None

    # -- worker side -----------------------------------------------------------------

    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        self._worker.register_kv_caches(kv_caches, _attention_backend(self._vllm_config))

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        self._worker.start_load_kv(self._get_connector_metadata())

    def wait_for_layer_load(self, layer_name: str) -> None:
        return  # loads are synchronous and complete before the forward starts

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any, **kwargs: Any):
        return  # saves copy whole blocks after the forward, in wait_for_save

    def wait_for_save(self) -> None:
        self._worker.wait_for_save(self._get_connector_metadata())

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self._worker.take_load_errors()


def _attention_backend(vllm_config: Any) -> str:
    """The attention backend(s) the model's layers actually run."""
    layers = vllm_config.compilation_config.static_forward_context.values()
    names = {layer.attn_backend.get_name() for layer in layers if hasattr(layer, "attn_backend")}
    return ",".join(sorted(names)) or "unknown"
