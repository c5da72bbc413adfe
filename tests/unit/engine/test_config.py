from __future__ import annotations

import pytest
from pydantic import ValidationError

from alora_serve.engine import EngineConfig, SamplingOptions


def test_defaults_are_exactness_friendly() -> None:
    config = EngineConfig()
    assert config.dtype == "float32"
    assert config.model is None
    assert config.kv_cache_bytes == 1 << 30


@pytest.mark.parametrize("block_size", [0, 16, 100])
def test_block_size_must_be_multiple_of_32(block_size: int) -> None:
    with pytest.raises(ValidationError, match="multiple of 32"):
        EngineConfig(block_size=block_size)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="kv_cache_size"):
        EngineConfig(kv_cache_size=3)


def test_sampling_options_bounds() -> None:
    with pytest.raises(ValidationError):
        SamplingOptions(max_tokens=0)
    with pytest.raises(ValidationError):
        SamplingOptions(logprobs=50)
