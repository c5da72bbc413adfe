"""An intrinsic's ``io.yaml`` (granite-common's format), parsed and validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from alora_serve.intrinsics.schemas import Schema, SchemaError, inline_refs
from alora_serve.intrinsics.sentences import DecodeSentences
from alora_serve.intrinsics.transformations import (
    TRANSFORMATIONS,
    Transformation,
    TransformationError,
)

RULES: dict[str, type[Transformation]] = {
    rule.kind: rule for rule in (*TRANSFORMATIONS, DecodeSentences)
}


class IOConfigError(ValueError):
    """An io.yaml that cannot be used; the message names the file and the field."""


class TransformationSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    input_path: list[Any] = Field(default_factory=list)

    def build(self) -> Transformation:
        rule = RULES.get(self.type)
        if rule is None:
            raise TransformationError(
                f"unknown transformation {self.type!r}; known: {sorted(RULES)}"
            )
        try:
            return rule(self.input_path, **(self.model_extra or {}))
        except (TypeError, ValueError) as exc:
            raise TransformationError(f"transformation {self.type!r}: {exc}") from None


class IOConfig(BaseModel):
    """Fields and meaning as in granite-common; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None
    response_format: dict[str, Any] | None
    transformations: list[TransformationSpec] | None
    instruction: str | None = None
    parameters: dict[str, Any] | None = None
    sentence_boundaries: dict[Literal["last_message", "documents"], str] | None = None
    docs_as_message: Literal["string", "json"] | None = None
    # Take the output (and its tokens) from the logprobs' final gpt-oss (Harmony) channel.
    logprobs_workaround: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _structured_outputs_as_response_format(cls, data: Any) -> Any:
        """granite-common sends ``response_format`` as ``extra_body.structured_outputs.json``
        (replacing any given in ``parameters``), so an io.yaml may also give its schema
        there; it becomes the response format."""
        data, structured = _without_structured_outputs(data)
        if structured is None or data.get("response_format") is not None:
            return data
        if not isinstance(structured, dict) or set(structured) != {"json"}:
            kinds = sorted(structured) if isinstance(structured, dict) else structured
            raise ValueError(
                f"parameters.extra_body.structured_outputs: only 'json' (a JSON schema) is "
                f"supported, got {kinds!r}"
            )
        return {**data, "response_format": structured["json"]}

    @field_validator("response_format", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"response_format is not a JSON schema ({exc})") from None
        return value

    @field_validator("docs_as_message", mode="before")
    @classmethod
    def _renderable_documents(cls, value: Any) -> Any:
        if value == "roles":
            raise ValueError(
                "docs_as_message 'roles' puts each document in a message of role "
                "'document <doc_id>', which chat messages here cannot have (system, user, "
                "assistant only); use 'string' or 'json'"
            )
        return value

    _rules: list[Transformation] = PrivateAttr(default_factory=list)
    _result_schema: Schema = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        # Built once, so a bad transformation fails at load time and calls reuse them.
        self._rules = [spec.build() for spec in self.transformations or ()]
        self._result_schema = self._derive_result_schema()

    def rules(self) -> list[Transformation]:
        return self._rules

    @property
    def result_schema(self) -> Schema:
        """JSON schema of the final result: the response format as rewritten by the
        transformations (raw text when there is no response format)."""
        return self._result_schema

    def _derive_result_schema(self) -> Schema:
        if self.response_format is None:
            return {"type": "string"}
        try:
            schema = inline_refs(self.response_format)
            for rule in self._rules:
                rule.rewrite_schema(schema)
        except (SchemaError, TransformationError) as exc:
            raise TransformationError(f"cannot follow the response format: {exc}") from None
        return schema

    @property
    def wants_logprobs(self) -> bool:
        return any(spec.type == "likelihood" for spec in self.transformations or ())


def _without_structured_outputs(data: Any) -> tuple[Any, Any]:
    """(the io.yaml without ``parameters.extra_body.structured_outputs``, that value)."""
    parameters = data.get("parameters") if isinstance(data, dict) else None
    extra_body = parameters.get("extra_body") if isinstance(parameters, dict) else None
    if not isinstance(extra_body, dict) or "structured_outputs" not in extra_body:
        return data, None
    rest = {k: v for k, v in extra_body.items() if k != "structured_outputs"}
    parameters = {k: v for k, v in parameters.items() if k != "extra_body"}
    parameters |= {"extra_body": rest} if rest else {}
    return {**data, "parameters": parameters}, extra_body["structured_outputs"]


def load_io_config(source: Path | str | dict[str, Any]) -> IOConfig:
    """Parse an io.yaml file (or an already loaded mapping); a bad transformation is
    reported here, when the intrinsic is installed, not when it is called."""
    name = str(source) if not isinstance(source, dict) else "<io config>"
    try:
        data = source if isinstance(source, dict) else yaml.safe_load(Path(source).read_text())
        config = IOConfig.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError, TransformationError) as exc:
        raise IOConfigError(f"{name}: {exc}") from None
    return config
