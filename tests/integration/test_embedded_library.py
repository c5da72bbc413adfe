"""The embedded default's library: trained adapters where the package ships them, seeded
stand-ins for the rest, and a stale copy replaced when the shipped adapter changes."""

from __future__ import annotations

from alora_serve.adapters.synthetic import make_adapter
from alora_serve.intrinsics.embedded_library import (
    TRAINED_DIR,
    embedded_library,
    shipped_intrinsics,
)
from alora_serve.intrinsics.synthetic_library import invocation_text
from alora_serve.model import resolve_model


def _trained(root, checkpoint, tokenizer, seed: int):
    invocation = tokenizer.encode(invocation_text("answerability"), add_special_tokens=False)
    target = root / "answerability" / checkpoint.name / "alora"
    target.mkdir(parents=True, exist_ok=True)
    return make_adapter(checkpoint.path, target, seed=seed, invocation_tokens=invocation)


def test_trained_adapters_serve_where_shipped_and_stand_ins_elsewhere(tmp_path, tokenizer) -> None:
    checkpoint = resolve_model(None)
    shipped = _trained(tmp_path / "trained", checkpoint, tokenizer, seed=7)
    names = ["answerability", "uncertainty"]
    library, trained = embedded_library(checkpoint, tmp_path / "lib", names, tmp_path / "trained")
    assert trained == ["answerability"]
    served = library / "answerability" / checkpoint.name / "alora" / "adapter_model.safetensors"
    assert served.read_bytes() == (shipped / "adapter_model.safetensors").read_bytes()
    assert (library / "uncertainty" / checkpoint.name / "alora").is_dir()  # a stand-in
    _trained(tmp_path / "trained", checkpoint, tokenizer, seed=8)  # a newer adapter ships
    embedded_library(checkpoint, tmp_path / "lib", names, tmp_path / "trained")
    assert served.read_bytes() == (shipped / "adapter_model.safetensors").read_bytes()


def test_the_package_ships_trained_intrinsics_for_the_embedded_model() -> None:
    model = resolve_model(None).name
    assert shipped_intrinsics(model) == ["answerability"]
    for name in shipped_intrinsics(model):
        adapter = TRAINED_DIR / name / model / "alora"
        assert (adapter / "adapter_model.safetensors").is_file()
        assert (adapter / "io.yaml").is_file() and (adapter / "training.json").is_file()
