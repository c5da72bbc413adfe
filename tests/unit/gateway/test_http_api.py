"""The HTTP API's body bound (``BodyLimit``), on a small FastAPI app in process."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from alora_serve.gateway.admission import Admission
from alora_serve.gateway.auth import TokenTable
from alora_serve.gateway.http_api import BodyLimit, serving_http

LIMIT = 100
ADMISSION = Admission(4)


def app() -> FastAPI:
    served = FastAPI()
    served.add_middleware(BodyLimit, openai_paths=("/v1/chat/completions",))
    served.state.max_body_bytes = LIMIT

    @served.post("/echo")
    @served.post("/v1/chat/completions")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @served.post("/served")
    async def served_call(request: Request) -> dict:  # reads its body as a call, as OpenAI's
        async with serving_http("POST /served", request, TokenTable(), ADMISSION):
            return {"bytes": len(await request.body())}

    return served


async def post(content, path: str = "/echo") -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=content)


async def test_bodies_within_the_limit_are_served() -> None:
    response = await post(b"x" * LIMIT)
    assert response.status_code == 200 and response.json() == {"bytes": LIMIT}


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    response = await post(b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["detail"] == f"the request body is over {LIMIT} bytes; send less"


async def test_a_streamed_body_is_cut_off_once_it_passes_the_limit() -> None:
    async def chunks():
        for _ in range(5):
            yield b"x" * 40  # no content-length: chunked

    response = await post(chunks())
    assert response.status_code == 413


async def test_on_the_openai_routes_the_refusal_has_openai_s_error_shape() -> None:
    response = await post(b"x" * (LIMIT + 1), "/v1/chat/completions")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["message"] == f"the request body is over {LIMIT} bytes; send less"
    assert error["code"] == 413
    assert (await post(b"x" * LIMIT, "/v1/chat/completions")).status_code == 200


async def test_a_streamed_body_over_the_limit_read_by_a_call_is_413_and_counted() -> None:
    async def chunks():
        for _ in range(5):
            yield b"x" * 40

    response = await post(chunks(), "/served")
    assert response.status_code == 413 and "over 100 bytes" in response.json()["detail"]
    assert ADMISSION.finished[("POST /served", "RESOURCE_EXHAUSTED")] == 1
    assert ADMISSION.in_flight == 0
