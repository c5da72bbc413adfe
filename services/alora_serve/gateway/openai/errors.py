"""Errors in OpenAI's body shape (what the ``openai`` SDK parses into its typed
exceptions)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "BadRequestError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong, and what to change")
    type: str
    param: str | None = Field(description="the request's field at fault, if one is")
    code: int


class OpenAIErrorBody(BaseModel):
    error: ErrorDetail


class OpenAIError(Exception):
    """An error answered in OpenAI's body shape (what the ``openai`` SDK parses)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers

    def body(self) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(self.status, "InternalServerError")
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.status}
        return {"error": error}


async def error_response(_: Request, exc: OpenAIError) -> JSONResponse:
    """The exception handler of ``OpenAIError``."""
    return JSONResponse(exc.body(), exc.status, exc.headers)


@contextlib.contextmanager
def openai_errors() -> Iterator[None]:
    """The API's HTTP errors (``http_api.http_error``, one mapping for every API), in
    OpenAI's body shape, naming the field at fault where one is."""
    try:
        yield
    except HTTPException as exc:
        raise as_openai_error(exc) from exc


def as_openai_error(exc: HTTPException) -> OpenAIError:
    headers = dict(exc.headers) if exc.headers else None
    param = getattr(exc.__cause__, "param", None)
    return OpenAIError(exc.status_code, str(exc.detail), param, headers)
