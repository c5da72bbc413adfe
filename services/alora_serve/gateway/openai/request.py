"""``POST /v1/chat/completions`` requests: the fields vLLM's OpenAI server takes that
matter for intrinsics, each honoured; any other is refused naming it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alora_serve.engine.types import (
    DEFAULT_MAX_TOKENS,
    MAX_SEED,
    MAX_TEMPERATURE,
    ChatMessage,
    Role,
    SamplingOptions,
)
from alora_serve.errors import InvalidInputError, NotFoundError
from alora_serve.intrinsics.call import Document, IntrinsicRequest

MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's limit
StopString = Annotated[str, Field(min_length=1)]
ADAPTER_NAME_FIELD = "chat_template_kwargs.adapter_name"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Role
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class JsonSchemaFormat(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")  # None: any JSON
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_when_asked(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given with type 'json_schema', and only then")
        return self


class StructuredOutputs(_Strict):
    """vLLM's ``structured_outputs`` (the forms intrinsics use): exactly one of them."""

    json_: dict[str, Any] | str | None = Field(default=None, alias="json")
    choice: list[str] | None = Field(default=None, min_length=1)
    json_object: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> StructuredOutputs:
        forms = ("json_", "choice", "json_object")
        given = [name for name in forms if getattr(self, name) is not None]
        if len(given) != 1:
            named = [name.rstrip("_") for name in given] or "none"
            raise ValueError(f"give one of json, choice or json_object: true, not {named}")
        return self


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str | None = None  # None: the base model
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: StopString | list[StopString] | None = None
    n: Literal[1] = 1
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    # vLLM's extra body
    structured_outputs: StructuredOutputs | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_choice: list[str] | None = Field(default=None, min_length=1)
    documents: list[Document] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_sent(cls, body: Any) -> Any:
        """A field sent as null is as if not sent, as OpenAI takes it (clients send
        some: Mellea sends ``tools: null``); a value asks for something and is checked."""
        if isinstance(body, dict):
            return {key: value for key, value in body.items() if value is not None}
        return body

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise _FieldError("top_logprobs", "top_logprobs needs logprobs: true")
        if self.stream_options is not None and not self.stream:
            raise _FieldError("stream_options", "stream_options needs stream: true")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise _FieldError("stop", "at most 4 stop strings")
        if not isinstance(self.adapter_name, str | None):
            raise _FieldError(ADAPTER_NAME_FIELD, "adapter_name must be an intrinsic's name")
        constraints = [name for name in _CONSTRAINTS if self._constraint(name) is not None]
        if len(constraints) > 1:
            raise _FieldError(constraints[1], f"give one output constraint, not {constraints}")
        return self

    def _constraint(self, name: str) -> Any:
        value = getattr(self, name)
        if name == "response_format" and value is not None and value.type == "text":
            return None
        return value

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def adapter_name(self) -> Any:
        """The adapter named the way Granite Switch (and Mellea) name one: on the base
        model, in ``chat_template_kwargs``."""
        return (self.chat_template_kwargs or {}).get("adapter_name")

    def conversation(self) -> IntrinsicRequest:
        template_kwargs = dict(self.chat_template_kwargs or {})
        template_kwargs.pop("adapter_name", None)  # says which adapter, not how to render
        return IntrinsicRequest(
            messages=[ChatMessage(role=m.role, content=m.text()) for m in self.messages],
            documents=self.documents or [],
            chat_template_kwargs=template_kwargs,
        )

    def sampling_options(self) -> SamplingOptions:
        schema, choice = self._output_constraint()
        return SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=(self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()),
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            json_schema=schema,
            choice=choice,
        )

    def _output_constraint(self) -> tuple[dict[str, Any] | None, tuple[str, ...] | None]:
        """(JSON schema, choices): at most one is set (checked above)."""
        structured = self.structured_outputs
        if structured is not None:
            if structured.choice is not None:
                return None, tuple(structured.choice)
            if structured.json_object:
                return {"type": "object"}, None
            return _schema("structured_outputs.json", structured.json_), None
        if self.guided_choice is not None:
            return None, tuple(self.guided_choice)
        if self.guided_json is not None:
            return _schema("guided_json", self.guided_json), None
        response_format = self.response_format
        if response_format is None or response_format.type == "text":
            return None, None
        if response_format.json_schema is None or response_format.json_schema.json_schema is None:
            return {"type": "object"}, None  # json_object, or a json_schema without one
        return response_format.json_schema.json_schema, None


# How pydantic names the member of a union it tried (``stop.str``): not a field.
_UNION_MEMBER = re.compile(
    r"^((constrained-)?(str|int|float|bool|dict|list|tuple)(\[.*\])?|function-\w+\[.*\])$"
)
_CONSTRAINTS = ("response_format", "structured_outputs", "guided_json", "guided_choice")


def _schema(field: str, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return value
    try:
        schema = json.loads(value)
    except json.JSONDecodeError as exc:
        raise RequestFieldError(f"{field} is not valid JSON: {exc}", field) from None
    if not isinstance(schema, dict):
        raise RequestFieldError(f"{field} must be a JSON schema object", field)
    return schema


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class RequestFieldError(InvalidInputError):
    """A request this API does not accept; ``param``: the field at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModelError(NotFoundError):
    def __init__(self, model: str, served: Sequence[str], param: str = "model") -> None:
        super().__init__(
            f"{param}: {model!r} is not served here; GET /v1/models lists {list(served)}",
            ("model", model),
        )
        self.param = param


async def parse_request(request: Request) -> ChatCompletionRequest:
    """The body, validated; ``RequestFieldError`` naming the first field at fault
    otherwise."""
    try:
        body = await request.json()
    except ValueError:
        raise RequestFieldError("the request body is not JSON") from None
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise _field_at_fault(exc) from None


def _field_at_fault(exc: ValidationError) -> RequestFieldError:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"] if not _UNION_MEMBER.match(str(part)))
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):
        return RequestFieldError(f"{cause.field}: {cause}", cause.field)
    if error["type"] == "extra_forbidden":
        return RequestFieldError(f"{field}: not supported by this server; remove it", field)
    message = error["msg"].removeprefix("Value error, ")
    return RequestFieldError(f"{field or 'body'}: {message}", field or None)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` inlined (OpenAPI resolves references
    against its components, not the schema's own definitions; these models nest without
    cycles)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


# The route parses its body itself (errors in OpenAI's shape); its OpenAPI says what it takes.
CHAT_COMPLETION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(ChatCompletionRequest.model_json_schema())}
        },
    }
}
