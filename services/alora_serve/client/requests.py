"""The API's requests, built from friendly Python inputs (validated before any call)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from alora.v1 import intrinsics_pb2 as pb
from google.protobuf import struct_pb2

ROLES = frozenset({"system", "user", "assistant"})

MessageLike: TypeAlias = pb.Message | Mapping[str, Any] | tuple[str, str]
DocumentLike: TypeAlias = pb.Document | Mapping[str, Any]


def message(item: MessageLike, where: str = "message") -> pb.Message:
    """A pb.Message from a pb.Message, ``{"role", "content"}`` or ``(role, content)``."""
    if isinstance(item, pb.Message):
        role, content = item.role, item.content
    elif isinstance(item, Mapping):
        _exact_keys(item, {"role", "content"}, where)
        role, content = item["role"], item["content"]
    elif isinstance(item, tuple | list) and len(item) == 2:
        role, content = item
    else:
        raise ValueError(
            f"{where}: expected a pb.Message, a {{'role', 'content'}} dict or a "
            f"(role, content) tuple, got {item!r}"
        )
    if role not in ROLES:
        raise ValueError(f"{where}: role must be one of {sorted(ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise ValueError(f"{where}: content must be a str, got {type(content).__name__}")
    return pb.Message(role=role, content=content)


def document(item: DocumentLike, where: str = "document") -> pb.Document:
    """A pb.Document from a pb.Document or ``{"doc_id", "text"}``."""
    if isinstance(item, pb.Document):
        return pb.Document(doc_id=item.doc_id, text=item.text)
    if not isinstance(item, Mapping):
        raise ValueError(
            f"{where}: expected a pb.Document or a {{'doc_id', 'text'}} dict, got {item!r}"
        )
    _exact_keys(item, {"doc_id", "text"}, where)
    for key in ("doc_id", "text"):
        if not isinstance(item[key], str):
            raise ValueError(f"{where}: {key} must be a str, got {type(item[key]).__name__}")
    return pb.Document(doc_id=item["doc_id"], text=item["text"])


def conversation(
    messages: Sequence[MessageLike], documents: Sequence[DocumentLike] = ()
) -> pb.Conversation:
    msgs = _sequence(messages, "messages")
    if not msgs:
        raise ValueError("messages: give at least one message")
    docs = _sequence(documents, "documents")
    return pb.Conversation(
        messages=[message(m, f"messages[{i}]") for i, m in enumerate(msgs)],
        documents=[document(d, f"documents[{i}]") for i, d in enumerate(docs)],
    )


def struct(arguments: Mapping[str, Any] | None, where: str = "arguments") -> struct_pb2.Struct:
    """A google.protobuf.Struct from a JSON-like dict (None: empty)."""
    result = struct_pb2.Struct()
    if arguments is None:
        return result
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{where}: expected a dict, got {type(arguments).__name__}")
    if bad := [k for k in arguments if not isinstance(k, str)]:
        raise ValueError(f"{where}: keys must be str, got {bad!r}")
    try:
        result.update(arguments)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{where}: values must be JSON-like (dict, list, str, number, bool, None): {e}"
        ) from e
    return result


def list_request() -> pb.ListIntrinsicsRequest:
    return pb.ListIntrinsicsRequest()


def run_intrinsic_request(
    intrinsic: str,
    messages: Sequence[MessageLike],
    documents: Sequence[DocumentLike] = (),
    arguments: Mapping[str, Any] | None = None,
) -> pb.RunIntrinsicRequest:
    return pb.RunIntrinsicRequest(
        intrinsic=_name(intrinsic, "intrinsic"),
        conversation=conversation(messages, documents),
        arguments=struct(arguments),
    )


def run_intrinsics_request(
    intrinsics: Sequence[str],
    messages: Sequence[MessageLike],
    documents: Sequence[DocumentLike] = (),
    arguments: Mapping[str, Mapping[str, Any]] | None = None,
) -> pb.RunIntrinsicsRequest:
    """``arguments``: intrinsic name -> its arguments."""
    names = _names(intrinsics, "intrinsics")
    if not names:
        raise ValueError("intrinsics: name at least one intrinsic")
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, Mapping):
        raise ValueError("arguments: expected a dict of intrinsic name -> its arguments")
    if unknown := sorted(str(k) for k in arguments if k not in names):
        raise ValueError(f"arguments: {unknown} not among the intrinsics called {names}")
    request = pb.RunIntrinsicsRequest(
        intrinsics=names, conversation=conversation(messages, documents)
    )
    for name, args in arguments.items():
        request.arguments[name].CopyFrom(struct(args, f"arguments[{name!r}]"))
    return request


def generate_request(
    messages: Sequence[MessageLike],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> pb.GenerateRequest:
    """``max_tokens``: None leaves it to the server's default (sent as 0)."""
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise ValueError(f"max_tokens must be an int, got {max_tokens!r}")
        if not 1 <= max_tokens < 1 << 32:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not _number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if not _number(top_p) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    sampling = pb.SamplingOptions(max_tokens=max_tokens or 0, temperature=temperature, top_p=top_p)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not -(1 << 63) <= seed < 1 << 63:
            raise ValueError(f"seed must be a 64-bit int or None, got {seed!r}")
        sampling.seed = seed
    return pb.GenerateRequest(conversation=conversation(messages), sampling=sampling)


def prefill_request(
    intrinsics: Sequence[str],
    messages: Sequence[MessageLike],
    documents: Sequence[DocumentLike] = (),
) -> pb.PrefillConversationRequest:
    """``intrinsics``: the ones that will be called (the KV to keep depends on them)."""
    names = _names(intrinsics, "intrinsics")
    if not names:
        raise ValueError("intrinsics: name at least one intrinsic that will be called")
    return pb.PrefillConversationRequest(
        conversation=conversation(messages, documents), intrinsics=names
    )


def _sequence(value: Any, where: str) -> list[Any]:
    # A str or a dict is iterable too, but never what was meant.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return list(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty intrinsic name, got {value!r}")
    return value


def _names(values: Any, where: str) -> list[str]:
    return [_name(v, f"{where}[{i}]") for i, v in enumerate(_sequence(values, where))]


def _exact_keys(item: Mapping[str, Any], keys: set[str], where: str) -> None:
    if set(item) != keys:
        missing, extra = sorted(keys - set(item)), sorted(map(str, set(item) - keys))
        raise ValueError(
            f"{where}: expected keys {sorted(keys)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
