"""Real multi-turn RAG conversations to replay (MTRAG: a task is a turn of a
conversation, with the turns before it and the documents retrieved for it)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

MAX_DOCUMENT_CHARS = 2000  # keeps prompts within the embedded model's context


@dataclass(frozen=True)
class Turn:
    question: str
    documents: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    domain: str
    turns: tuple[Turn, ...]


def load_conversations(path: Path, max_documents: int = 3) -> list[Conversation]:
    """Every conversation in an MTRAG JSONL file, its user turns in order."""
    tasks: dict[str, list[dict]] = defaultdict(list)
    with path.open() as lines:
        for line in lines:
            task = json.loads(line)
            tasks[task["conversation_id"]].append(task)
    conversations = [_conversation(cid, ts, max_documents) for cid, ts in tasks.items()]
    if not conversations:
        raise ValueError(f"{path} holds no MTRAG tasks")
    return sorted(conversations, key=lambda c: c.conversation_id)


def _conversation(conversation_id: str, tasks: list[dict], max_documents: int) -> Conversation:
    """The user's questions of the latest task, in order; each with the documents
    retrieved for its own turn where the file has that turn's task, else the latest's."""
    by_turn = {int(task["turn"]): task for task in tasks}
    latest = by_turn[max(by_turn)]
    questions = [t["text"] for t in latest["input"] if t["speaker"] == "user"]
    first_turn = int(latest["turn"]) - len(questions) + 1
    turns = tuple(
        Turn(question, _documents(by_turn.get(first_turn + i, latest), max_documents))
        for i, question in enumerate(questions)
    )
    return Conversation(conversation_id, latest.get("Collection", ""), turns)


def _documents(task: dict, max_documents: int) -> tuple[dict[str, str], ...]:
    return tuple(
        {"doc_id": str(c["document_id"]), "text": c["text"][:MAX_DOCUMENT_CHARS]}
        for c in task["contexts"][:max_documents]
    )


def turn_arguments(intrinsics: list[str], documents: tuple[dict[str, str], ...]) -> dict:
    """The intrinsics a RAG backend calls on a turn, with their arguments: context
    relevance judges the turn's first retrieved document, and is not called on a turn
    that retrieved none (MTRAG has such turns)."""
    arguments: dict[str, dict[str, str]] = {}
    for name in intrinsics:
        if name != "context_relevance":
            arguments[name] = {}
        elif documents:
            arguments[name] = {"document_content": documents[0]["text"]}
    return arguments
