"""What the sync and async clients share: channel settings, retries, credentials, metadata,
deadlines, and the requests built from friendly Python inputs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from alora.v1 import intrinsics_pb2 as pb
from google.protobuf import struct_pb2

SERVICE = "alora.v1.Intrinsics"
# Safe to replay: the server keeps no state a second attempt would see twice. Not
# Generate: a stream whose chunks were delivered is not replayed.
RETRIED_METHODS = ("ListIntrinsics", "RunIntrinsic", "RunIntrinsics", "PrefillConversation")
MAX_ATTEMPTS_CAP = 5  # gRPC ignores retry policies above this
MAX_MESSAGE_BYTES = 64 << 20
# At most one ping per 5 minutes, and only during calls: the server's default ping policy
# answers more frequent pings with GOAWAY (too_many_pings).
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000
ROLES = frozenset({"system", "user", "assistant"})

MessageLike: TypeAlias = pb.Message | Mapping[str, Any] | tuple[str, str]
DocumentLike: TypeAlias = pb.Document | Mapping[str, Any]
Metadata: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClientTLS:
    """PEM bytes. No ``root_certificates``: the system's roots. ``certificate_chain`` and
    ``private_key`` (together): the client's certificate, for mutual TLS."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name_override: str | None = None  # the name expected in the server certificate

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("ClientTLS: give certificate_chain and private_key together")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def service_config(max_attempts: int) -> str:
    """The channel's service config: UNAVAILABLE retried with exponential backoff on the
    idempotent methods (``max_attempts`` 1: no retries)."""
    method: dict[str, Any] = {"name": [{"service": SERVICE, "method": m} for m in RETRIED_METHODS]}
    if max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method]})


def channel_options(max_attempts: int, tls: ClientTLS | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(max_attempts)),
        ("grpc.service_config_disable_resolution", 1),
        # A request larger than this buffer is not retried: let every request be.
        ("grpc.per_rpc_retry_buffer_size", MAX_MESSAGE_BYTES),
    ]
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return options


class ClientCore:
    """A client's settings, checked once: target, credentials, options, metadata, deadline."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        tls: ClientTLS | None,
        timeout_s: float,
        max_attempts: int,
    ) -> None:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"target must be 'host:port', got {target!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise ValueError(f"max_attempts must be an int, got {max_attempts!r}")
        if not 1 <= max_attempts <= MAX_ATTEMPTS_CAP:
            raise ValueError(f"max_attempts must be in [1, {MAX_ATTEMPTS_CAP}], got {max_attempts}")
        self.target = target
        self.default_timeout_s = _positive_timeout(timeout_s)
        self.metadata = call_metadata(token)
        self.credentials = None if tls is None else tls.credentials()
        self.options = channel_options(max_attempts, tls)

    def timeout(self, timeout_s: float | None) -> float:
        """The deadline of one call, in seconds from now."""
        return self.default_timeout_s if timeout_s is None else _positive_timeout(timeout_s)

    def sync_channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=self.options)
        return grpc.secure_channel(self.target, self.credentials, options=self.options)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.target, options=self.options)
        return grpc.aio.secure_channel(self.target, self.credentials, options=self.options)


def call_metadata(token: str | None) -> Metadata:
    """Every call's metadata: the bearer token, if any."""
    if token is None:
        return ()
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise ValueError("token must be a non-empty string without whitespace")
    return (("authorization", f"Bearer {token}"),)


def _positive_timeout(timeout_s: float) -> float:
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or timeout_s <= 0
    ):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# -- requests from friendly inputs -------------------------------------------------------


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
    max_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> pb.GenerateRequest:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ValueError(f"max_tokens must be an int, got {max_tokens!r}")
    if not 1 <= max_tokens < 1 << 32:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not _number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if not _number(top_p) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    sampling = pb.SamplingOptions(max_tokens=max_tokens, temperature=temperature, top_p=top_p)
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
