"""Mellea calling intrinsics on alora-serve as it calls them on a Granite Switch server:
one OpenAI backend on the base model, each adapter named per call in
``chat_template_kwargs.adapter_name``, its io.yaml read from a Granite Switch style
directory (``adapter_index.json`` and ``io_configs/``) on the client. No GPU, no model on
the client: Mellea renders the request with its bundled granite-common code; the server
runs the adapter as aLoRA on the conversation's stored base KV.

python -m alora_serve.examples.mellea_intrinsics [--url http://127.0.0.1:8000] (needs
``pip install mellea``)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from alora_serve.intrinsics.builtins import BUILTIN_DIR

QUESTION = "How tall is the Eiffel Tower?"
DOCUMENT = {"doc_id": "1", "text": "The Eiffel Tower is 330 metres tall."}
ANSWER = [("user", "Write a one-line greeting."), ("assistant", "Hello, world!")]
REQUIREMENT = "The response must be one line."
# Mellea's output contracts (mellea/backends/adapters/io_contracts.py) for two built-ins:
# Mellea's name -> the transformations that give its result shape, from the raw output.
MELLEA_OUTPUTS: dict[str, list[dict[str, Any]]] = {
    "answerability": [{"type": "nest", "input_path": [], "field_name": "answerability"}],
    "requirement-check": [
        {"type": "likelihood", "input_path": [], "categories_to_values": {"yes": 1.0, "no": 0.0}},
        {"type": "nest", "input_path": [], "field_name": "score"},
        {"type": "nest", "input_path": [], "field_name": "requirement_check"},
    ],
}


def adapter_directory(root: Path) -> Path:
    """A Granite Switch style adapter index for Mellea: each built-in's io.yaml (its input
    side as the server defines it) with Mellea's output shape."""
    entries = []
    for name, transformations in MELLEA_OUTPUTS.items():
        io_yaml = yaml.safe_load((BUILTIN_DIR / f"{name.replace('-', '_')}.yaml").read_text())
        path = root / "io_configs" / name / "io.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump({**io_yaml, "transformations": transformations}))
        config = str(path.relative_to(root))
        entries.append({"adapter_name": name, "io_config": config, "technology": "alora"})
    (root / "adapter_index.json").write_text(json.dumps({"adapters": entries}))
    return root


def main(url: str) -> None:
    from mellea.backends.openai import OpenAIBackend
    from mellea.stdlib.components import Document, Message
    from mellea.stdlib.components.intrinsic import core, rag
    from mellea.stdlib.context import ChatContext

    model = _base_model(url)
    with tempfile.TemporaryDirectory() as scratch:
        backend = OpenAIBackend(
            model_id=model,
            base_url=f"{url}/v1",
            api_key="unused",
            load_embedded_adapters=True,
            adapter_source=str(adapter_directory(Path(scratch))),
        )
        document = Document(DOCUMENT["text"], doc_id=DOCUMENT["doc_id"])
        answerable = rag.check_answerability(QUESTION, [document], ChatContext(), backend)
        print(f"answerability: {answerable}")
        context = ChatContext()
        for role, text in ANSWER:
            context = context.add(Message(role, text))
        print(f"requirement_check: {core.requirement_check(context, backend, REQUIREMENT)}")


def _base_model(url: str) -> str:
    import httpx

    return httpx.get(f"{url}/health", timeout=30).json()["model"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    main(parser.parse_args().url)
