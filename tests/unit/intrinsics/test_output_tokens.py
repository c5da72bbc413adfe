"""Likelihoods computed on the output message's own tokens (gpt-oss channel headers in the
logprobs, granite-common's logprobs_workaround) and values that are no category."""

from __future__ import annotations

import math

import pytest

from alora_serve.engine.types import StepLogprobs, TokenLogprob
from alora_serve.intrinsics.builtins import builtin_config
from alora_serve.intrinsics.io_config import load_io_config
from alora_serve.intrinsics.output import harmony_final_channel, message_tokens, process_output
from alora_serve.intrinsics.transformations import Likelihood, TransformationError
from tests.unit.intrinsics.test_transformations import ctx, step

P_ANSWERABLE = 0.967  # the chosen token "answer"; "un" (unanswerable) has the rest
HEADER = ("<|channel|>", "final", "<|message|>")


def answer_tokens(header: tuple[str, ...] = HEADER) -> list[StepLogprobs]:
    """gpt-oss answering '"answerable"': its logprobs begin with the Harmony header and end
    with <|return|>, none of which is in the message content."""
    alternatives = (("answer", math.log(P_ANSWERABLE)), ("un", math.log(1 - P_ANSWERABLE)))
    return [
        *(step(text, 0.0) for text in header),
        step('"', 0.0),
        step("answer", math.log(P_ANSWERABLE), alternatives),
        step("able", 0.0),
        step('"', 0.0),
        step("<|return|>", 0.0),
    ]


def likelihood(content: str, tokens, config=None) -> float:
    result = process_output(config or builtin_config("answerability"), content, tokens)
    return result["answerability_likelihood"]


def test_a_channel_header_before_the_message_is_skipped() -> None:
    # Before: offsets counted from the header, so "<|channel|>" stood for the value: 1.0.
    assert likelihood('"answerable"', answer_tokens()) == pytest.approx(P_ANSWERABLE)


def test_the_last_final_answer_counts_when_reasoning_quotes_it() -> None:
    reasoning = ("<|channel|>", "analysis", "<|message|>", '"', "answerable", '"', "<|end|>")
    tokens = answer_tokens((*reasoning, "<|start|>", "assistant", *HEADER))
    assert likelihood('"answerable"', tokens) == pytest.approx(P_ANSWERABLE)


def test_tokens_that_spell_the_message_are_kept_whole() -> None:
    tokens = answer_tokens(header=())
    assert message_tokens(tokens, '"answerable"') == tokens
    # A piece detokenized differently ("é" as two replacement characters) still aligns.
    pieces = [step(t, 0.0) for t in ("<|message|>", '{"e": "caf', "\ufffd\ufffd", '"}')]
    assert message_tokens(pieces, '{"e": "café"}') == pieces[1:]


def test_logprobs_workaround_takes_the_output_from_the_final_channel() -> None:
    answerability = builtin_config("answerability").model_dump()
    config = load_io_config({**answerability, "logprobs_workaround": True})
    # A server that drops special tokens but keeps the channel name: not JSON by itself.
    assert likelihood('final"answerable"', answer_tokens(), config) == pytest.approx(P_ANSWERABLE)
    assert [s.chosen.text for s in harmony_final_channel(answer_tokens())] == [
        '"',
        "answer",
        "able",
        '"',
    ]
    assert harmony_final_channel(answer_tokens(header=())) == ()
    # Tokens that only read like a header are not one.
    assert harmony_final_channel([step(t, 0.0) for t in ("<|", "channel", "|>final")]) == ()


def test_a_value_that_is_no_category_is_an_error() -> None:
    rule = Likelihood([], {"yes": 1.0, "no": 0.0})
    tokens = [step('"', 0.0), step("maybe", -0.1, (("yes", -2.0),)), step('"', 0.0)]
    with pytest.raises(TransformationError, match=r"'maybe' is none of the categories \['yes'"):
        rule.apply("maybe", ctx('"maybe"', tokens))


def test_boolean_categories_read_alternatives_as_json_spells_them() -> None:
    rule = Likelihood(["j"], {True: 1.0, False: 0.0})
    raw = '{"j": false}'
    top = (("false", math.log(0.6)), ("true", math.log(0.3)), ("True", math.log(0.1)))
    tokens = [step('{"j": ', 0.0), step("false", math.log(0.6), top), step("}", 0.0)]
    assert rule.apply({"j": False}, ctx(raw, tokens)) == {"j": pytest.approx(0.3 / 0.9)}
    with pytest.raises(TransformationError, match="is none of the categories"):
        Likelihood([], {1: 1.0, 0: 0.0}).apply(True, ctx("true", [step("true", 0.0)]))


def test_no_weight_at_all_is_an_error_not_zero() -> None:
    tokens = [TokenLogprob(-1, "7", -math.inf)]
    steps = [StepLogprobs(tokens[0], ())]
    with pytest.raises(TransformationError, match="no weight"):
        Likelihood([], {7: 0.75}).apply(7, ctx("7", steps))
