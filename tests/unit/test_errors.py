"""The error kinds cross processes (Ray pickles them between replicas) intact."""

from __future__ import annotations

import pickle

import pytest

from alora_serve.engine.errors import PromptTooLongError, UnknownAdapterError
from alora_serve.errors import NotFoundError, ServeError, failure
from alora_serve.intrinsics.catalog import UnknownIntrinsicError
from alora_serve.intrinsics.runner import InputTooLongError, IntrinsicOutputError
from alora_serve.prefill.service import UnknownLeaseError
from alora_serve.topology.handles import CallTimeoutError


@pytest.mark.parametrize(
    "error",
    [
        UnknownIntrinsicError("nope", ["a", "b"]),
        UnknownAdapterError("nope", ["a"]),
        UnknownLeaseError("lease 7 was released or has expired", ("lease", "7")),
        InputTooLongError("too long"),
        PromptTooLongError("too long"),
        IntrinsicOutputError("cut at 64 tokens"),
        CallTimeoutError("prefill.lease did not answer within 120 s"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling_with_their_kind_message_and_details(error: ServeError):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (str(copy), copy.reason) == (str(error), error.reason)
    if isinstance(error, NotFoundError):
        assert copy.resource == error.resource


def test_a_failure_is_described_without_foreign_text():
    assert failure(UnknownIntrinsicError("nope", [])) == "unknown intrinsic 'nope'; installed: []"
    assert failure(ConnectionError("10.0.0.7:6379 refused, see /var/log/x")) == "ConnectionError"
