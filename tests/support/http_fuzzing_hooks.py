"""schemathesis hooks for fuzzing the HTTP API of live engines (SCHEMATHESIS_HOOKS).

A generated chat may ask for thousands of tokens, which a CPU engine takes minutes to
write; the run then measures generation, not input handling. So chats that ask for more
than a few tokens ask for a few (still a valid request); everything else is as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis

CHAT = "/v1/chat/completions"
MAX_TOKENS = 8


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    is_chat = context.operation is not None and context.operation.path == CHAT
    if not (is_chat and isinstance(body, dict)):
        return body
    for limit in ("max_tokens", "max_completion_tokens"):
        wanted = body.get(limit)
        if type(wanted) is int and wanted > MAX_TOKENS:
            body = {**body, limit: MAX_TOKENS}
    return body
