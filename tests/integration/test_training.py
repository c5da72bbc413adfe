"""``alora-serve train`` on the real SmolLM2 with PEFT: training prompts are serving's
prompts, the loss is on the adapter's output only, the prefix shortcut gives the gradient
of the whole sequence, and a run resumed from its checkpoint ends where an uninterrupted
one does, with an adapter the catalog serves."""

from __future__ import annotations

import json

import pytest
import torch

from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.engine.types import ChatMessage
from alora_serve.intrinsics.builtins import builtin_config
from alora_serve.intrinsics.call import Document, IntrinsicRequest
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.synthetic_library import invocation_text
from alora_serve.model import resolve_model
from alora_serve.training.checkpoints import CheckpointMismatchError
from alora_serve.training.encoding import IGNORED, Encoder
from alora_serve.training.examples import Example, write_examples
from alora_serve.training.mtrag import answerability_examples, context_relevance_examples
from alora_serve.training.trainer import TrainConfig, _load, _loss, train
from tests.support.conversations import DATA

QUESTIONS = [
    ("Who wrote Hamlet?", "Hamlet is a tragedy by William Shakespeare.", "answerable"),
    ("Who wrote Hamlet?", "Paris is the capital of France.", "unanswerable"),
    ("How tall is the Eiffel Tower?", "The Eiffel Tower is 330 metres tall.", "answerable"),
    ("How tall is the Eiffel Tower?", "Bananas are rich in potassium.", "unanswerable"),
]


def tiny_examples() -> list[Example]:
    return [
        Example(
            request=IntrinsicRequest(
                messages=[ChatMessage(role="user", content=question)],
                documents=[Document(doc_id="1", text=text)],
            ),
            target=json.dumps(label),
            label=label,
        )
        for question, text, label in QUESTIONS
    ]


def encoder(tokenizer, name: str = "answerability") -> Encoder:
    invocation = tokenizer.encode(invocation_text(name), add_special_tokens=False)
    return Encoder(
        ChatRenderer(tokenizer), builtin_config(name), invocation, tokenizer.eos_token_id, 4096
    )


@pytest.mark.engine
def test_training_prompts_are_the_served_prompts_token_for_token(runner, tokenizer) -> None:
    mtrag = DATA / "mtrag" / "mtrag_un_reference.jsonl"
    examples = answerability_examples(mtrag)[1][:5]
    relevance = context_relevance_examples(mtrag)[1][:2]  # the document in the instruction
    requirement = Example(
        request=tiny_examples()[0].request.model_copy(
            update={"messages": [*tiny_examples()[0].request.messages,
                                 ChatMessage(role="assistant", content="Shakespeare.")]}
        ),
        arguments={"requirement": "Answer in one word."},
        target='"yes"',
    )  # fmt: skip
    cases = [
        *(("answerability", e) for e in examples),
        *(("context_relevance", e) for e in relevance),
        ("requirement_check", requirement),
    ]
    for name, example in cases:
        served = runner.prepare(name, example.request, example.arguments)
        encoded = encoder(tokenizer, name).encode(example)
        invocation = len(served.prompt) - served.adapter_start
        assert (*encoded.prefix, *encoded.suffix[:invocation]) == served.prompt, name
        assert len(encoded.prefix) == served.adapter_start


def test_the_loss_is_only_on_what_the_adapter_writes(tokenizer) -> None:
    encoded = encoder(tokenizer).encode(tiny_examples()[0])
    invocation = tokenizer.encode(invocation_text("answerability"), add_special_tokens=False)
    target = tokenizer.encode('"answerable"', add_special_tokens=False)
    assert encoded.suffix == (*invocation, *target, tokenizer.eos_token_id)
    assert encoded.labels == (IGNORED,) * len(invocation) + (*target, tokenizer.eos_token_id)
    assert IGNORED not in encoded.prefix and len(encoded.prefix) > 20


def test_the_prefix_shortcut_gives_the_gradient_of_the_whole_sequence(tmp_path) -> None:
    """Base KV of the prefix without gradients, then the suffix with the adapter: the same
    loss and gradient as PEFT's aLoRA over the whole sequence."""
    config = TrainConfig(
        intrinsic="answerability", data=tmp_path / "x", out=tmp_path, rank=4, dropout=0.0
    )
    model, tokenizer = _load(resolve_model(None).path, config)
    with torch.no_grad():  # PEFT starts B at zero: give the adapter an effect
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    model.eval()
    example = encoder(tokenizer).encode(tiny_examples()[1])
    shortcut = _loss(model, example)
    shortcut.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    whole = model(
        input_ids=torch.tensor([(*example.prefix, *example.suffix)]),
        labels=torch.tensor([(IGNORED,) * len(example.prefix) + example.labels]),
    ).loss
    whole.backward()
    assert shortcut.item() == pytest.approx(whole.item(), rel=1e-5)
    for name, param in model.named_parameters():
        if param.requires_grad:
            difference = (grads[name] - param.grad).norm() / param.grad.norm()
            # fp32 sums in another order, through 30 layers: up to 1e-4 seen at layer 0 on
            # some CPUs; a wrong gradient (the adapter's effect on the prefix) is of order 1
            assert difference < 1e-3, (name, difference)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path) -> None:
    data = tmp_path / "train.jsonl"
    write_examples(data, tiny_examples())
    settings = {"intrinsic": "answerability", "data": data, "rank": 4, "accumulate": 2}
    settings |= {"learning_rate": 2e-3, "checkpoint_every": 1}
    straight = train(TrainConfig(**settings, out=tmp_path / "a", epochs=3), progress=print)
    train(TrainConfig(**settings, out=tmp_path / "b", epochs=1), progress=print)
    resumed = train(TrainConfig(**settings, out=tmp_path / "b", epochs=3), progress=print)
    weights = [_weights(path) for path in (straight, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    with pytest.raises(CheckpointMismatchError, match="other data or settings"):
        train(TrainConfig(**settings | {"rank": 8}, out=tmp_path / "b", epochs=4))
    adapter_config = json.loads((straight / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == resolve_model(None).name  # no path
    assert not (straight / "README.md").exists()
    record = json.loads((straight / "training.json").read_text())
    assert record["config"]["data"] == "train.jsonl" and len(record["data_sha256"]) == 64
    assert record["optimizer_steps"] == 6 and record["losses"][-1] < record["losses"][0]
    catalog = Catalog.from_library(tmp_path / "a", resolve_model(None).name)
    served = catalog.get("answerability")
    assert served.adapter.is_alora and served.adapter.rank == 4


def _weights(path):
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")
