"""Intrinsics: an adapter plus an io.yaml (granite-common's format) that defines its
structured input and output. See docs/intrinsics.md.

- ``call``: the call model (request, documents, call, result, timings, descriptions);
- ``catalog``: installed intrinsics from an adapter library (both layouts);
- ``builtins``: the built-in definitions (``builtin/*.yaml``);
- ``rewrite``: input processing; ``sentences``: tagging and ``decode_sentences``;
- ``output`` and ``transformations``: output processing; ``schemas``: schema walking;
- ``runner``: running (and composing) intrinsics on the engine;
- ``synthetic_library``: seeded stand-in adapters for the built-ins (tests, demos).
"""
