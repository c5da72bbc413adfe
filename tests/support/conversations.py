"""Real multi-turn RAG conversations (MTRAG) cut to a target prompt length."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"  # vendored: see tests/data/README.md
MTRAG = DATA / "mtrag" / "mtrag_un_reference.jsonl"
ROLES = {"user": "user", "agent": "assistant"}


@cache
def mtrag_tasks() -> tuple[dict, ...]:
    with MTRAG.open() as f:
        return tuple(json.loads(line) for line in f)


def conversation(tokenizer, target_tokens: int, skip: int = 0) -> list[dict[str, str]]:
    """Messages of a real conversation whose rendering is about ``target_tokens`` long:
    its documents in a system message (trimmed to fit), then its turns."""
    task = next(_tasks_with_enough_text(tokenizer, target_tokens, skip))
    turns = _turns(task)
    documents = "\n\n".join(c["text"] for c in task["contexts"])
    low, high = 0, len(documents)
    while low < high:  # longest document prefix that keeps the rendering under target
        mid = (low + high + 1) // 2
        if _length(tokenizer, documents[:mid], turns) <= target_tokens:
            low = mid
        else:
            high = mid - 1
    return [{"role": "system", "content": documents[:low]}, *turns]


def render(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def _length(tokenizer, documents: str, turns: list[dict[str, str]]) -> int:
    return len(render(tokenizer, [{"role": "system", "content": documents}, *turns]))


def _tasks_with_enough_text(tokenizer, target: int, skip: int) -> Iterator[dict]:
    found = 0
    for task in mtrag_tasks():
        text = "".join(c["text"] for c in task["contexts"])
        # ~4 characters per token; the turns must leave room for the documents.
        if len(text) >= 5 * target and _length(tokenizer, "", _turns(task)) < target // 2:
            if found == skip:
                yield task
            found += 1


def _turns(task: dict) -> list[dict[str, str]]:
    return [{"role": ROLES[t["speaker"]], "content": t["text"]} for t in task["input"]]


def rag_request(tokenizer, target_tokens: int, skip: int = 0):
    """An intrinsic request from a real MTRAG task: its turns, the reference answer as the
    last assistant turn, and its documents trimmed so the whole is about
    ``target_tokens`` long."""
    from alora_serve.intrinsics.call import Document, IntrinsicRequest

    task = next(_tasks_with_enough_text(tokenizer, target_tokens, skip))
    turns = [*_turns(task), {"role": "assistant", "content": task["targets"][0]["text"].strip()}]
    budget = max(0, (target_tokens - _length(tokenizer, "", turns)) * 4)  # ~4 chars/token
    documents = []
    for context in task["contexts"]:
        text = context["text"][:budget]
        budget -= len(text)
        if text:
            documents.append(Document(doc_id=str(context["document_id"]), text=text))
    return IntrinsicRequest(messages=turns, documents=documents)


def client_inputs(request) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """An IntrinsicRequest as the SDK takes it: (role, content) messages, document dicts."""
    messages = [(m.role, m.content) for m in request.messages]
    return messages, [{"doc_id": d.doc_id, "text": d.text} for d in request.documents]
