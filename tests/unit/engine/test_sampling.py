"""SamplingOptions as vLLM's SamplingParams: what a request asks reaches vLLM."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alora_serve.engine.types import SamplingOptions
from alora_serve.engine.vllm_glue import sampling_params


def test_stop_strings_choices_and_schemas_reach_vllm() -> None:
    params = sampling_params(SamplingOptions(max_tokens=5, stop=("\n", "END"), seed=3))
    assert params.stop == ["\n", "END"] and params.seed == 3 and params.max_tokens == 5
    assert sampling_params(SamplingOptions()).stop == []
    chosen = sampling_params(SamplingOptions(choice=("yes", "no"))).structured_outputs
    assert chosen.choice == ["yes", "no"] and chosen.json is None
    schema = {"type": "object"}
    shaped = sampling_params(SamplingOptions(json_schema=schema)).structured_outputs
    assert shaped.json == schema and shaped.choice is None


def test_options_vllm_would_refuse_are_refused_first() -> None:
    with pytest.raises(ValidationError):
        SamplingOptions(stop=("a", "b", "c", "d", "e"))
    with pytest.raises(ValidationError):
        SamplingOptions(choice=())
    with pytest.raises(ValidationError):
        SamplingOptions(stop=("",))  # vLLM raises on an empty stop string
