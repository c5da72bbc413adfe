"""Answerability and context relevance examples from the vendored MTRAG tasks: labels,
the split by conversation, and the augmentation, each marked."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from alora_serve.training.examples import ExamplesError, read_examples, write_examples
from alora_serve.training.mtrag import (
    LABELS,
    MAX_DOCUMENT_CHARS,
    answerability_examples,
    context_relevance_examples,
    document_of,
)
from tests.support.conversations import DATA

MTRAG = DATA / "mtrag" / "mtrag_un_reference.jsonl"


@pytest.fixture(scope="module")
def split():
    return answerability_examples(MTRAG)


def _task_id(example) -> str:
    return example.source.split("+")[0].removeprefix("mtrag:")


def test_no_conversation_is_in_both_parts(split) -> None:
    tasks = {json.loads(line)["task_id"]: json.loads(line) for line in MTRAG.open()}
    conversations = [{tasks[_task_id(e)]["conversation_id"] for e in part} for part in split]
    assert conversations[0].isdisjoint(conversations[1])
    assert len(conversations[0]) + len(conversations[1]) == len(
        {t["conversation_id"] for t in tasks.values()}
    )


def test_labels_follow_mtrag_s_and_targets_are_the_adapter_s_json(split) -> None:
    tasks = {json.loads(line)["task_id"]: json.loads(line) for line in MTRAG.open()}
    for example in split[1]:
        assert example.label == LABELS[tasks[_task_id(example)]["answerability"][0]]
        assert json.loads(example.target) == example.label
        assert all(len(d.text) <= MAX_DOCUMENT_CHARS for d in example.request.documents)
        assert example.request.messages[-1].role == "user"


def test_only_training_is_augmented_with_another_conversation_s_passages(split) -> None:
    train, test = split
    augmented = [e for e in train if e.augmented]
    assert augmented and not [e for e in test if e.augmented]
    assert all("+passages-of:" in e.source for e in augmented)
    originals = {e.source: e for e in train}
    for example in augmented:
        own, donor = example.source.split("+passages-of:")
        assert example.label == "unanswerable" and originals[own].label == "answerable"
        assert example.request.documents == originals[donor].request.documents
        assert originals[donor].group == example.group and donor != own
    assert Counter(e.label for e in test) == {"answerable": 52, "unanswerable": 34}


def test_examples_round_trip_and_bad_lines_are_named(split, tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    assert write_examples(path, split[0][:3]) == 3
    assert read_examples(path) == split[0][:3]
    path.write_text('{"request": {"messages": []}, "target": "x"}\n')
    with pytest.raises(ExamplesError, match=r"train.jsonl:1:"):
        read_examples(path)


# -- context relevance ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def relevance_split():
    return context_relevance_examples(MTRAG)


def test_context_relevance_splits_the_conversations_as_answerability_does(
    split, relevance_split
) -> None:
    for part, relevance_part in zip(split, relevance_split, strict=True):
        conversations = {_task_id(e).split("<::>")[0] for e in part}
        assert {_task_id(e).split("<::>")[0] for e in relevance_part} <= conversations


def test_each_task_with_passages_gets_its_own_passage_and_another_conversation_s(
    relevance_split,
) -> None:
    tasks = {json.loads(line)["task_id"]: json.loads(line) for line in MTRAG.open()}

    def passages(task: dict) -> dict[str, str]:  # text -> its document
        return {
            c["text"][:MAX_DOCUMENT_CHARS]: document_of(c["document_id"]) for c in task["contexts"]
        }

    for part in relevance_split:
        assert Counter(e.label for e in part) == {
            "relevant": len(part) // 2,
            "irrelevant": len(part) // 2,
        }
        for example in part:
            task = tasks[_task_id(example)]
            judged = example.arguments["document_content"]
            assert not example.request.documents and json.loads(example.target) == example.label
            assert example.request.messages[-1].content == task["input"][-1]["text"]
            if example.label == "relevant":
                assert judged in passages(task) and not example.augmented
                continue
            donor = tasks[example.source.split("+passage-of:mtrag:")[1]]
            assert example.augmented and judged in passages(donor)
            assert donor["conversation_id"] != task["conversation_id"]
            assert donor["Collection"] == task["Collection"] == example.group
            assert passages(donor)[judged] not in passages(task).values()  # another document
    assert len(relevance_split[1]) == 126  # the 63 held-out tasks with passages, twice


def test_a_passage_s_document_is_its_id_before_the_span() -> None:
    assert document_of("ibmcld_00691-7371-8668") == "ibmcld_00691"
    assert document_of("2ec3def5abce1bd5-2-2124") == "2ec3def5abce1bd5"
    assert document_of("806502664_349-964-0-615") == "806502664"
