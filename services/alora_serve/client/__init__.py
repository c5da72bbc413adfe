"""Python client of alora-serve's gRPC API (alora.v1), blocking and asyncio.

with AloraClient("localhost:50051", token="...") as client:
    result = client.run_intrinsic("answerability", [("user", "Who wrote Hamlet?")],
                                  [{"doc_id": "1", "text": "Hamlet is by Shakespeare."}])
    print(result_value(result))
"""

from __future__ import annotations

from typing import Any

from alora.v1 import intrinsics_pb2 as pb
from google.protobuf import json_format

from alora_serve.client.aio import AsyncAloraClient
from alora_serve.client.channel import ClientTLS
from alora_serve.client.errors import AloraError
from alora_serve.client.sync import AloraClient

__all__ = ["AloraClient", "AloraError", "AsyncAloraClient", "ClientTLS", "result_value"]


def result_value(result: pb.IntrinsicResult) -> Any:
    """``result.result`` as plain Python (dict, list, str, float, bool or None; JSON numbers
    are floats)."""
    return json_format.MessageToDict(result.result)
