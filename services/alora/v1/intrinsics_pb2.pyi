import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("doc_id", "text")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    text: str
    def __init__(self, doc_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("messages", "documents")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ...) -> None: ...

class ListIntrinsicsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IntrinsicInfo(_message.Message):
    __slots__ = ("name", "description", "needs_documents", "arguments", "result_schema", "adapter_kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NEEDS_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    needs_documents: bool
    arguments: _struct_pb2.Struct
    result_schema: _struct_pb2.Struct
    adapter_kind: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., needs_documents: _Optional[bool] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., result_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., adapter_kind: _Optional[str] = ...) -> None: ...

class ListIntrinsicsResponse(_message.Message):
    __slots__ = ("intrinsics",)
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    intrinsics: _containers.RepeatedCompositeFieldContainer[IntrinsicInfo]
    def __init__(self, intrinsics: _Optional[_Iterable[_Union[IntrinsicInfo, _Mapping]]] = ...) -> None: ...

class RunIntrinsicRequest(_message.Message):
    __slots__ = ("intrinsic", "conversation", "arguments")
    INTRINSIC_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    intrinsic: str
    conversation: Conversation
    arguments: _struct_pb2.Struct
    def __init__(self, intrinsic: _Optional[str] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RunIntrinsicsRequest(_message.Message):
    __slots__ = ("intrinsics", "conversation", "arguments")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Struct
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    intrinsics: _containers.RepeatedScalarFieldContainer[str]
    conversation: Conversation
    arguments: _containers.MessageMap[str, _struct_pb2.Struct]
    def __init__(self, intrinsics: _Optional[_Iterable[str]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., arguments: _Optional[_Mapping[str, _struct_pb2.Struct]] = ...) -> None: ...

class RunIntrinsicsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IntrinsicResult]
    def __init__(self, results: _Optional[_Iterable[_Union[IntrinsicResult, _Mapping]]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "reused_prompt_tokens", "generated_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REUSED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    reused_prompt_tokens: int
    generated_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., reused_prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("total", "worker", "queue", "base_kv", "adapter_prefill", "decode", "other")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    BASE_KV_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PREFILL_FIELD_NUMBER: _ClassVar[int]
    DECODE_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    total: _duration_pb2.Duration
    worker: _duration_pb2.Duration
    queue: _duration_pb2.Duration
    base_kv: _duration_pb2.Duration
    adapter_prefill: _duration_pb2.Duration
    decode: _duration_pb2.Duration
    other: _duration_pb2.Duration
    def __init__(self, total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., worker: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., queue: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., base_kv: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., adapter_prefill: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., decode: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., other: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Likelihood(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: float
    def __init__(self, value: _Optional[float] = ...) -> None: ...

class IntrinsicResult(_message.Message):
    __slots__ = ("intrinsic", "result", "answerability_likelihood", "certainty", "rewritten_question", "raw_output", "usage", "timings")
    INTRINSIC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ANSWERABILITY_LIKELIHOOD_FIELD_NUMBER: _ClassVar[int]
    CERTAINTY_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_QUESTION_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    intrinsic: str
    result: _struct_pb2.Value
    answerability_likelihood: Likelihood
    certainty: Likelihood
    rewritten_question: str
    raw_output: str
    usage: Usage
    timings: Timings
    def __init__(self, intrinsic: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., answerability_likelihood: _Optional[_Union[Likelihood, _Mapping]] = ..., certainty: _Optional[_Union[Likelihood, _Mapping]] = ..., rewritten_question: _Optional[str] = ..., raw_output: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class SamplingOptions(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "seed")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("conversation", "sampling")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    sampling: SamplingOptions
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("text", "finish_reason", "usage")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    text: str
    finish_reason: str
    usage: Usage
    def __init__(self, text: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class PrefillConversationRequest(_message.Message):
    __slots__ = ("conversation", "intrinsics")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    intrinsics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., intrinsics: _Optional[_Iterable[str]] = ...) -> None: ...

class PrefillConversationResponse(_message.Message):
    __slots__ = ("kept_prompt_tokens",)
    KEPT_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    kept_prompt_tokens: int
    def __init__(self, kept_prompt_tokens: _Optional[int] = ...) -> None: ...
