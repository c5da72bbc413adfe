from __future__ import annotations

import math

import pytest

from alora_serve.engine.types import StepLogprobs, TokenLogprob
from alora_serve.intrinsics.json_paths import matching_paths
from alora_serve.intrinsics.json_positions import parse_with_positions
from alora_serve.intrinsics.transformations import (
    DropDuplicates,
    Explode,
    Likelihood,
    MergeSpans,
    Nest,
    OutputContext,
    Project,
    TransformationError,
)


def step(text: str, logprob: float, top: tuple[tuple[str, float], ...] = ()) -> StepLogprobs:
    """A generated token and its alternatives (token ids do not matter here)."""
    alternatives = tuple(TokenLogprob(-1, t, lp) for t, lp in top)
    return StepLogprobs(TokenLogprob(-1, text, logprob), alternatives)


def ctx(raw: str = "null", tokens=()) -> OutputContext:
    return OutputContext(positions=parse_with_positions(raw), logprobs=tokens)


def test_paths_with_wildcards() -> None:
    value = [{"r": 1, "c": [2]}, {"r": 3}]
    assert matching_paths(value, []) == [()]
    assert matching_paths(value, [None, "r"]) == [(0, "r"), (1, "r")]
    assert matching_paths(value, [None, "c", None]) == [(0, "c", 0)]


def test_likelihood_mixes_categories_by_first_token() -> None:
    raw = '{"v": "partially relevant"}'
    tokens = [
        step('{"v": "', -0.1),
        step(
            "part",
            math.log(0.5),
            (("part", math.log(0.5)), ("ir", math.log(0.3)), ("re", math.log(0.2)), ("<x>", -1.0)),
        ),
        step("ially relevant", -0.01),
    ]
    rule = Likelihood(["v"], {"relevant": 1.0, "irrelevant": 0.0, "partially relevant": 0.5})
    result = rule.apply({"v": "partially relevant"}, ctx(raw, tokens))
    assert result["v"] == pytest.approx(0.5 * 0.5 + 0.3 * 0.0 + 0.2 * 1.0)


def test_likelihood_of_an_integer_category() -> None:
    tokens = [step("7", math.log(0.6), (("7", math.log(0.6)), ("8", math.log(0.4))))]
    rule = Likelihood([], {7: 0.75, 8: 0.85}, output_name="certainty")
    assert rule.apply(7, ctx("7", tokens)) == {"certainty": pytest.approx(0.6 * 0.75 + 0.4 * 0.85)}


def test_likelihood_needs_logprobs_covering_the_value() -> None:
    rule = Likelihood([], {"yes": 1.0})
    with pytest.raises(TransformationError, match="needs logprobs"):
        rule.apply("yes", ctx('"yes"'))
    with pytest.raises(TransformationError, match="no generated token covers offset 1"):
        rule.apply("yes", ctx('"yes"', [step('"', -0.1)]))


def test_likelihood_with_the_quote_fused_into_the_first_token() -> None:
    # SmolLM2 may emit '"un' as one token: alternatives are compared after the quote, and
    # one without it ('un') or with nothing after it ('"') says nothing about a category.
    top = (
        ('"un', math.log(0.3)),
        ('"ans', math.log(0.6)),
        ("un", math.log(0.05)),
        ('"', math.log(0.05)),
    )
    tokens = [step('"un', math.log(0.3), top), step('answerable"', -0.01)]
    rule = Likelihood([], {"answerable": 1.0, "unanswerable": 0.0})
    result = rule.apply("unanswerable", ctx('"unanswerable"', tokens))
    assert result == pytest.approx(0.6 / 0.9)


def test_explode_then_drop_duplicates() -> None:
    value = [{"r": 0, "c": [8, 8, 11]}, {"r": 1, "c": []}]
    exploded = Explode([], "c").apply(value, ctx())
    assert exploded == [{"r": 0, "c": 8}, {"r": 0, "c": 8}, {"r": 0, "c": 11}]
    assert DropDuplicates([], ["r", "c"]).apply(exploded, ctx()) == [
        {"r": 0, "c": 8},
        {"r": 0, "c": 11},
    ]


def test_project_renames_and_nest_wraps() -> None:
    value = [{"f": True, "e": "why", "r": 0}]
    projected = Project([], {"r": "sentence", "f": "faithfulness"}).apply(value, ctx())
    assert projected == [{"sentence": 0, "faithfulness": True}]
    assert Nest([], "answer").apply(0.25, ctx()) == {"answer": 0.25}


def test_merge_spans_joins_adjacent_spans_of_a_group() -> None:
    spans = [
        {"doc": "a", "b": 10, "e": 20, "t": "B. "},
        {"doc": "a", "b": 0, "e": 10, "t": "A. "},
        {"doc": "a", "b": 30, "e": 40, "t": "D. "},
        {"doc": "b", "b": 20, "e": 30, "t": "X. "},
    ]
    merged = MergeSpans([], ["doc"], "b", "e", "t").apply(spans, ctx())
    assert merged == [
        {"doc": "a", "b": 0, "e": 20, "t": "A. B. "},
        {"doc": "a", "b": 30, "e": 40, "t": "D. "},
        {"doc": "b", "b": 20, "e": 30, "t": "X. "},
    ]


def test_merge_spans_refuses_unprojected_fields() -> None:
    with pytest.raises(TransformationError, match="project them away"):
        MergeSpans([], ["doc"], "b", "e").apply([{"doc": "a", "b": 0, "e": 1, "x": 2}], ctx())


def test_bad_shapes_name_rule_and_path() -> None:
    with pytest.raises(TransformationError, match=r"explode at \[\]: expected a list"):
        Explode([], "c").apply({"c": [1]}, ctx())
    with pytest.raises(TransformationError, match="lacks fields"):
        Explode([], "c").apply([{"r": 1}], ctx())
