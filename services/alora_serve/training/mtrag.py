"""Labelled examples from MTRAG (IBM's multi-turn RAG benchmark, vendored in
tests/data/mtrag): each task is a conversation up to a user question, the passages
retrieved for it, and a human label. Both intrinsics split by conversation the same
seeded way: no conversation is in both parts, of either.

Answerability, whether the documents let the question be answered: ANSWERABLE and
PARTIAL (the passages answer it, or part of it: an answer is written from them) are
``answerable``; UNANSWERABLE (nothing retrieved answers it) and UNDERSPECIFIED (the
question must be clarified before anything can answer it; MTRAG's reference reply asks
back) are ``unanswerable``. In MTRAG every UNANSWERABLE task has no passages, so "no
documents" alone would separate most of them; the training part is augmented with
questions paired with another conversation's passages (labelled ``unanswerable``,
``source`` says so), so that the adapter has to read the passages. The held-out part is
left as MTRAG has it.

Context relevance, whether one document bears on the question: MTRAG has no such label,
so both parts are made of its passages. A passage retrieved for the task is ``relevant``
(for UNDERSPECIFIED tasks too, whose reply asks back: a noisy positive); a passage of
another conversation of the same domain, cut from a document none of the task's passages
comes from, is ``irrelevant`` (made, marked ``augmented``). The judged passage is the
instruction's ``document_content``; the request carries no documents, so the adapter
cannot tell by a passage being listed twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from alora_serve.engine.types import ChatMessage
from alora_serve.intrinsics.call import Document, IntrinsicRequest
from alora_serve.training.examples import Example, TrainingInputError

LABELS = {
    "ANSWERABLE": "answerable",
    "PARTIAL": "answerable",
    "UNANSWERABLE": "unanswerable",
    "UNDERSPECIFIED": "unanswerable",
}
MAX_DOCUMENTS = 3
MAX_DOCUMENT_CHARS = 700  # keeps an example near 600 tokens: trainable here in minutes
MAX_MESSAGES = 5  # the question and the four messages before it
ROLES = {"user": "user", "agent": "assistant"}


def answerability_examples(
    path: Path, held_out: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(training, held-out) examples of answerability of the tasks in an MTRAG file."""
    train_tasks, test_tasks = _split(path, held_out, seed)
    train = [_answerability(t) for t in train_tasks]
    test = [_answerability(t) for t in test_tasks]
    return train + list(_with_other_passages(train, seed)), test


def context_relevance_examples(
    path: Path, held_out: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(training, held-out) examples of context relevance: for each task with passages,
    one of its own (``relevant``) and one of another conversation's (``irrelevant``)."""
    train_tasks, test_tasks = _split(path, held_out, seed)
    return (
        list(_relevance_pairs(train_tasks, random.Random(seed))),
        list(_relevance_pairs(test_tasks, random.Random(seed + 1))),
    )


EXAMPLES = {  # what make-examples makes, by intrinsic
    "answerability": answerability_examples,
    "context_relevance": context_relevance_examples,
}


def _split(path: Path, held_out: float, seed: int) -> tuple[list[dict], list[dict]]:
    tasks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    conversations = sorted({task["conversation_id"] for task in tasks})
    random.Random(seed).shuffle(conversations)
    test_ids = set(conversations[: round(held_out * len(conversations))])
    return (
        [t for t in tasks if t["conversation_id"] not in test_ids],
        [t for t in tasks if t["conversation_id"] in test_ids],
    )


def _messages(task: dict) -> list[ChatMessage]:
    return [
        ChatMessage(role=ROLES[turn["speaker"]], content=turn["text"])
        for turn in task["input"][-MAX_MESSAGES:]
    ]


def _passages(task: dict) -> list[Document]:
    return [
        Document(doc_id=str(context["document_id"]), text=context["text"][:MAX_DOCUMENT_CHARS])
        for context in task["contexts"][:MAX_DOCUMENTS]
    ]


def _answerability(task: dict) -> Example:
    label = LABELS[task["answerability"][0]]
    return Example(
        request=IntrinsicRequest(messages=_messages(task), documents=_passages(task)),
        target=json.dumps(label),
        label=label,
        group=task["Collection"],
        source=f"mtrag:{task['task_id']}",
    )


def _with_other_passages(train: list[Example], seed: int) -> Iterator[Example]:
    """Each answerable training question again with the passages of another training
    conversation of the same domain: ``unanswerable``."""
    rng = random.Random(seed + 1)
    with_passages = [e for e in train if e.request.documents]
    for example in with_passages:
        if example.label != "answerable":
            continue
        others = [
            e for e in with_passages if e.group == example.group and e.source != example.source
        ]
        donor = rng.choice(others)
        request = example.request.model_copy(update={"documents": donor.request.documents})
        yield example.model_copy(
            update={
                "request": request,
                "target": json.dumps("unanswerable"),
                "label": "unanswerable",
                "source": f"{example.source}+passages-of:{donor.source}",
                "augmented": True,
            }
        )


def _relevance_pairs(tasks: list[dict], rng: random.Random) -> Iterator[Example]:
    passages = {t["task_id"]: _passages(t) for t in tasks if t["contexts"]}
    by_id = {t["task_id"]: t for t in tasks}
    for task_id, own in passages.items():
        task = by_id[task_id]
        source = f"mtrag:{task_id}"
        yield _relevance(task, rng.choice(own), "relevant", source)
        own_documents = {document_of(d.doc_id) for d in own}
        foreign = {
            other_id: unrelated
            for other_id, candidates in passages.items()
            if by_id[other_id]["Collection"] == task["Collection"]
            and by_id[other_id]["conversation_id"] != task["conversation_id"]
            and (unrelated := [d for d in candidates if document_of(d.doc_id) not in own_documents])
        }
        if not foreign:
            raise TrainingInputError(
                f"{source}: no other conversation of its domain to take a passage from"
            )
        donor = rng.choice(sorted(foreign))
        yield _relevance(
            task,
            rng.choice(foreign[donor]),
            "irrelevant",
            f"{source}+passage-of:mtrag:{donor}",
            augmented=True,
        )


def document_of(passage_id: str) -> str:
    """The document a passage is cut from: MTRAG's ids are ``<document>-<start>-<end>``,
    clapnq's document ``<id>_<n>``."""
    head = passage_id.split("-")[0]
    clapnq = re.fullmatch(r"(\d+)_\d+", head)
    return clapnq.group(1) if clapnq else head


def _relevance(
    task: dict, passage: Document, label: str, source: str, augmented: bool = False
) -> Example:
    return Example(
        request=IntrinsicRequest(messages=_messages(task)),
        arguments={"document_content": passage.text},
        target=json.dumps(label),
        label=label,
        group=task["Collection"],
        source=source,
        augmented=augmented,
    )


def fingerprint(path: Path) -> str:
    """Which data a run used (the file's SHA-256, short)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
