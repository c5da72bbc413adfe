"""Sentence tags (``<c0> ... <c1> ...``) in requests and their decoding in results.

Tagging splits text with nltk's untrained Punkt tokenizer, as granite-common does, and
joins ``<{prefix}{n}> {sentence}`` with single spaces. We keep a table of every tagged
sentence with its true ``[begin, end)`` in the caller's original text (a sentence runs to
the start of the next), so a result points back into exactly what the caller sent.
granite-common 0.4.1 counts offsets in the text with its tags removed, which is the same
wherever single spaces separate the sentences; d174a3f counted them in the tagged text,
and :func:`sentences_of_tagged_text` reproduces those for its conformance data
(docs/notes/granite-common-intrinsics-io.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from alora_serve.intrinsics.json_paths import Path, get_path, replace_at
from alora_serve.intrinsics.schemas import Schema, schema_nodes
from alora_serve.intrinsics.transformations import OutputContext, Transformation

SOURCES = ("last_message", "documents")
_FIELDS = ("begin", "end", "text", "document_id")
_FIELD_SCHEMAS: dict[str, Schema] = {
    "begin": {"type": "integer", "minimum": 0},
    "end": {"type": "integer", "minimum": 0},
    "text": {"type": "string"},
    "document_id": {"type": "string"},
}


@dataclass(frozen=True)
class Sentence:
    begin: int
    end: int
    text: str
    document_id: str | None = None


@dataclass(frozen=True)
class TaggedText:
    text: str
    sentences: tuple[Sentence, ...]


@cache
def _punkt():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()  # untrained: no data download, as upstream


def tag_sentences(
    text: str, prefix: str, first_index: int = 0, document_id: str | None = None
) -> TaggedText:
    """``text`` with every sentence tagged ``<{prefix}{n}> ``, numbered from
    ``first_index``; whitespace between sentences becomes one space."""
    spans = list(_punkt().span_tokenize(text))
    # A sentence runs up to the next one (whitespace included, as upstream's texts do), so
    # merge_spans can join neighbours: one's end is the next one's begin.
    ends = [next_begin for next_begin, _ in spans[1:]] + [e for _, e in spans[-1:]]
    sentences = tuple(
        Sentence(b, end, text[b:end], document_id) for (b, _), end in zip(spans, ends, strict=True)
    )
    tagged = " ".join(f"<{prefix}{first_index + i}> {text[b:e]}" for i, (b, e) in enumerate(spans))
    return TaggedText(tagged, sentences)


def sentences_of_tagged_text(
    text: str, prefix: str, first_index: int = 0, document_id: str | None = None
) -> list[Sentence]:
    """The sentences of already tagged ``text`` with granite-common d174a3f's offsets:
    ``begin`` advances by the tag's position in the tagged text, and each sentence's text
    keeps the space before the next tag. Only for reproducing that version's results."""
    tag = f"<{prefix}{first_index}> "
    location = text.find(tag)
    if location < 0:
        return []
    sentences, begin, text_begin, index = [], 0, location + len(tag), first_index
    while True:
        tag = f"<{prefix}{index + 1}> "
        location = text.find(tag, text_begin)
        if location < 0:
            rest = text[text_begin:]
            sentences.append(Sentence(begin, begin + len(rest), rest, document_id))
            return sentences
        end = begin + location
        sentences.append(Sentence(begin, end, text[text_begin:location], document_id))
        begin, text_begin, index = end, location + len(tag), index + 1


class DecodeSentences(Transformation):
    """A sentence number the model produced -> where that sentence is and what it says.

    The number's parent record gains the fields ``output_names`` maps from ``begin``,
    ``end``, ``text`` and ``document_id`` (in that order; the number itself stays).
    """

    kind = "decode_sentences"

    def __init__(self, input_path, source: str, output_names: Mapping[str, str | None]) -> None:
        super().__init__(input_path)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if not self.input_path:
            raise ValueError("input_path must name a field of a record, not the root")
        unknown = set(output_names) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown output_names {sorted(unknown)}; known: {_FIELDS}")
        self.source = source
        self.output_names = {f: output_names[f] for f in _FIELDS if output_names.get(f)}

    def rewrite(self, value: Any, path: Path, context: OutputContext) -> Any:
        parent = get_path(value, path[:-1])
        if not isinstance(parent, dict):
            raise self.fail(path, "the sentence number must be a field of a record")
        sentence = self._sentence(get_path(value, path), path, context.sentences)
        fields = {name: getattr(sentence, f) for f, name in self.output_names.items()}
        return replace_at(value, path[:-1], {**parent, **fields})

    def rewrite_schema(self, schema: Schema) -> None:
        for parent in schema_nodes(schema, self.input_path[:-1]):
            properties = parent.setdefault("properties", {})
            for f, name in self.output_names.items():
                properties[name] = dict(_FIELD_SCHEMAS[f])
            required = parent.setdefault("required", [])
            required.extend(n for n in self.output_names.values() if n not in required)

    def bound_numbers(self, schema: Schema, count: int) -> None:
        """Constrain (in place) a response format to the ``count`` sentences a request
        has, so decoding can neither name a sentence that does not exist nor go on
        forever: numbers lie in ``[0, count)``, arrays at the path (for ``explode``) hold
        at most ``count`` numbers, and a list of records about the last message's
        sentences holds at most one record per sentence."""
        for node in schema_nodes(schema, self.input_path):
            numbers = node
            if node.get("type") == "array":
                node["maxItems"] = min(node.get("maxItems", count), count)
                numbers = node.setdefault("items", {})
            numbers["minimum"] = max(numbers.get("minimum", 0), 0)
            numbers["maximum"] = min(numbers.get("maximum", count - 1), count - 1)
        if self.source == "last_message" and self.input_path[-2:-1] == (None,):
            for records in schema_nodes(schema, self.input_path[:-2]):
                if records.get("type") == "array":
                    records["maxItems"] = min(records.get("maxItems", count), count)

    def _sentence(
        self, number: Any, path: Path, tables: Mapping[str, Sequence[Sentence]]
    ) -> Sentence:
        table = tables.get(self.source)
        if table is None:
            raise self.fail(path, f"the request has no tagged {self.source} sentences")
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.fail(path, f"expected a sentence number, got {number!r}")
        if not 0 <= number < len(table):
            raise self.fail(path, f"sentence {number} does not exist ({len(table)} tagged)")
        return table[number]
