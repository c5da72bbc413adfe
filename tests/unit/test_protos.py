"""The public API: generated code matches the .proto files, and the messages work."""

from __future__ import annotations

from pathlib import Path

from alora_serve.protos import GENERATED_ROOT, generate, generated_files


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    committed = generated_files(GENERATED_ROOT)
    for new, old in zip(fresh, committed, strict=True):
        assert old.read_bytes() == new.read_bytes(), (
            f"{old} is stale: run `python -m alora_serve.protos` and commit the result"
        )


def test_the_service_and_its_streaming_rpc() -> None:
    from alora.v1 import intrinsics_pb2

    service = intrinsics_pb2.DESCRIPTOR.services_by_name["Intrinsics"]
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {
        "ListIntrinsics",
        "RunIntrinsic",
        "RunIntrinsics",
        "Generate",
        "PrefillConversation",
    }
    assert methods["Generate"].server_streaming
    assert not methods["RunIntrinsics"].server_streaming


def test_a_request_survives_the_wire() -> None:
    from alora.v1 import intrinsics_pb2 as pb

    request = pb.RunIntrinsicsRequest(
        intrinsics=["answerability", "requirement_check"],
        conversation=pb.Conversation(
            messages=[pb.Message(role="user", content="Is the sky blue?")],
            documents=[pb.Document(doc_id="1", text="The sky is blue.")],
        ),
    )
    request.arguments["requirement_check"].update({"requirement": "be brief"})
    parsed = pb.RunIntrinsicsRequest.FromString(request.SerializeToString())
    assert parsed == request
    assert parsed.arguments["requirement_check"]["requirement"] == "be brief"
