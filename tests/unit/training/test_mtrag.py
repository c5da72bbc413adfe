"""Answerability examples from the vendored MTRAG tasks: labels, the split by
conversation, and the augmentation, each marked."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from alora_serve.training.examples import ExamplesError, read_examples, write_examples
from alora_serve.training.mtrag import LABELS, MAX_DOCUMENT_CHARS, answerability_examples
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
