"""vLLM's side of the KV store: a KVConnectorBase_V1 whose scheduler half (EngineCore)
turns orders into block copies and whose worker half copies bytes between the arena
and vLLM's paged cache."""
