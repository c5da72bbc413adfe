"""The main job's HTTP chat API over the real engine, in process."""

from __future__ import annotations

import httpx
import pytest

from alora_serve.server.http_api import create_app

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
async def client(engine):
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_chat_completion(client) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is the capital of France?"}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert "Paris" in body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": True}, "stream"),
    ],
)
async def test_bad_request_names_the_field(client, payload, field) -> None:
    response = await client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 422
    assert field in response.text
    assert (await client.get("/health")).json()["status"] == "ok"
