"""A minimal OpenAI-compatible chat endpoint over one engine.

Only the fields alora-serve honours are accepted; anything else is a 422 that names the
field, rather than a silently ignored option.
"""

from __future__ import annotations

import time
import uuid

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from alora_serve.engine import ChatMessage, Engine, SamplingOptions


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="alora-serve", version="v1")
    model_name = engine.checkpoint.name

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> dict:
        options = SamplingOptions(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
        )
        result = await engine.chat(request.messages, options)
        usage = result.usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.generated_tokens,
                "total_tokens": usage.prompt_tokens + usage.generated_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.reused_prompt_tokens},
            },
        }

    return app
