"""Answerability examples from MTRAG (IBM's multi-turn RAG benchmark, vendored in
tests/data/mtrag): each task is a conversation up to a user question, the passages
retrieved for it, and a human label.

Labels, for an intrinsic that says whether the documents let the question be answered:
ANSWERABLE and PARTIAL (the passages answer it, or part of it: an answer is written
from them) are ``answerable``; UNANSWERABLE (nothing retrieved answers it) and
UNDERSPECIFIED (the question must be clarified before anything can answer it; MTRAG's
reference reply asks back) are ``unanswerable``.

Split by conversation: no conversation is in both parts. In MTRAG every UNANSWERABLE task
has no passages, so "no documents" alone would separate most of them; the training part
is augmented with questions paired with another conversation's passages (labelled
``unanswerable``, ``source`` says so), so that the adapter has to read the passages.
The held-out part is left as MTRAG has it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

from alora_serve.engine.types import ChatMessage
from alora_serve.intrinsics.call import Document, IntrinsicRequest
from alora_serve.training.examples import Example

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
    """(training, held-out) examples of the tasks in an MTRAG JSONL file."""
    tasks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    conversations = sorted({task["conversation_id"] for task in tasks})
    random.Random(seed).shuffle(conversations)
    test_ids = set(conversations[: round(held_out * len(conversations))])
    train = [_example(t) for t in tasks if t["conversation_id"] not in test_ids]
    test = [_example(t) for t in tasks if t["conversation_id"] in test_ids]
    return train + list(_with_other_passages(train, seed)), test


def _example(task: dict) -> Example:
    messages = [
        ChatMessage(role=ROLES[turn["speaker"]], content=turn["text"])
        for turn in task["input"][-MAX_MESSAGES:]
    ]
    documents = [
        Document(doc_id=str(context["document_id"]), text=context["text"][:MAX_DOCUMENT_CHARS])
        for context in task["contexts"][:MAX_DOCUMENTS]
    ]
    label = LABELS[task["answerability"][0]]
    return Example(
        request=IntrinsicRequest(messages=messages, documents=documents),
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


def fingerprint(path: Path) -> str:
    """Which data a run used (the file's SHA-256, short)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
