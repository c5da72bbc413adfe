from __future__ import annotations

import pytest
from pydantic import ValidationError

from alora_serve.intrinsics.call import IntrinsicRequest, IntrinsicsCall

REQUEST = IntrinsicRequest(messages=[{"role": "user", "content": "Is the sky blue?"}])


def test_a_workers_part_keeps_only_its_intrinsics_and_their_arguments() -> None:
    call = IntrinsicsCall(
        intrinsics=["answerability", "requirement_check", "citations"],
        request=REQUEST,
        arguments={"requirement_check": {"requirement": "cite"}},
        tenant="acme",
    )
    part = call.only(["requirement_check"])
    assert part.intrinsics == ["requirement_check"]
    assert part.arguments == {"requirement_check": {"requirement": "cite"}}
    assert (part.request, part.tenant) == (REQUEST, "acme")
    assert call.only(["citations"]).arguments == {}


def test_a_call_names_at_least_one_intrinsic_and_no_unknown_field() -> None:
    with pytest.raises(ValidationError):
        IntrinsicsCall(intrinsics=[], request=REQUEST)
    with pytest.raises(ValidationError, match="extra"):
        IntrinsicsCall.model_validate({"intrinsics": ["a"], "request": REQUEST, "stream": True})
