"""Recognising when constrained output is already determined by what was generated.

Under a JSON schema whose root is an enum, once the text so far begins exactly one of the
allowed values, every later token is forced by the grammar: decoding them only costs
time. Stopping there and completing the text gives the same output, with the logprobs
of the tokens that decided it.
"""

from __future__ import annotations

import json
from typing import Any


def determined_output(schema: dict[str, Any] | None, text: str) -> str | None:
    """The one output ``schema`` still allows after ``text``, or None if several remain
    (or the schema is not a root enum). Values are compact JSON, as the engine emits."""
    if not schema or "enum" not in schema or not text:
        return None
    candidates = [json.dumps(v, separators=(",", ":")) for v in schema["enum"]]
    matching = [c for c in candidates if c.startswith(text)]
    return matching[0] if len(matching) == 1 else None
