"""JSON parsing that remembers where each scalar literal sits in the raw text.

Transformations such as ``likelihood`` need the position of a value in the model's raw
output to find the token (and its logprobs) that produced it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KEYWORDS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class Literal:
    """A scalar of the parsed document and its span ``[begin, end)`` in the raw text
    (strings include their quotes)."""

    value: str | int | float | bool | None
    begin: int
    end: int


def parse_with_positions(text: str) -> Any:
    """Parse ``text`` as JSON into dicts and lists whose scalars are ``Literal``s."""
    parser = _Parser(text)
    value = parser.value()
    parser.skip_whitespace()
    if parser.pos != len(text):
        parser.fail("trailing characters after the JSON value")
    return value


def strip_positions(value: Any) -> Any:
    """The plain JSON value of a ``parse_with_positions`` result."""
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, dict):
        return {k: strip_positions(v) for k, v in value.items()}
    return [strip_positions(v) for v in value]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str):
        raise ValueError(f"invalid JSON at offset {self.pos}: {problem}")

    def skip_whitespace(self) -> None:
        self.pos = _WHITESPACE.match(self.text, self.pos).end()

    def value(self) -> Any:
        self.skip_whitespace()
        char = self.text[self.pos : self.pos + 1]
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char == '"':
            begin = self.pos
            string = self.string()
            return Literal(string, begin, self.pos)
        for word, keyword in _KEYWORDS.items():
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return Literal(keyword, self.pos - len(word), self.pos)
        if match := _NUMBER.match(self.text, self.pos):
            self.pos = match.end()
            return Literal(json.loads(match.group()), match.start(), match.end())
        return self.fail(f"unexpected {char!r}" if char else "unexpected end of input")

    def string(self) -> str:
        try:
            decoded, self.pos = json.decoder.scanstring(self.text, self.pos + 1)
        except json.JSONDecodeError as exc:
            self.fail(exc.msg)
        return decoded

    def object(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self.skip_whitespace()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            self.skip_whitespace()
            if not self.text.startswith('"', self.pos):
                self.fail("expected a string key")
            key = self.string()
            self.expect(":")
            result[key] = self.value()
            if self.expect(",", "}") == "}":
                return result

    def array(self) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        self.skip_whitespace()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.append(self.value())
            if self.expect(",", "]") == "]":
                return result

    def expect(self, *chars: str) -> str:
        self.skip_whitespace()
        char = self.text[self.pos : self.pos + 1]
        if char not in chars:
            self.fail(f"expected one of {chars}, found {char!r}")
        self.pos += 1
        return char
