"""Intrinsics: an adapter plus an io.yaml (granite-common's format) that defines its
structured input and output. Work in progress (issue 4): io.yaml parsing, JSON with
positions and the output transformations exist; input rewriting, sentence tagging,
decode_sentences, the catalog and constrained decoding are still to come.
"""
