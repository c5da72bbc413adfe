"""The engine layer: vLLM engines and the API the services wrap."""

from alora_serve.engine.config import EngineConfig
from alora_serve.engine.engine import Engine
from alora_serve.engine.types import ChatMessage, Generation, SamplingOptions, Usage

__all__ = ["ChatMessage", "Engine", "EngineConfig", "Generation", "SamplingOptions", "Usage"]
