from __future__ import annotations

from pathlib import Path

import pytest

from alora_serve.cli import main
from alora_serve.paths import CACHE_ENV


def test_serve_with_missing_model_dir_fails_fast(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err
    assert "--model" in err


def test_serve_without_prepared_default_says_how_to_prepare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(["serve"]) == 2
    assert "alora-serve prepare-model" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["launch"])
    assert exit_info.value.code == 2


def test_make_examples_writes_the_split_of_the_intrinsic_asked(tmp_path: Path, capsys) -> None:
    assert main(["make-examples", "context_relevance", "--out", str(tmp_path)]) == 0
    assert "512 training examples, 126 held out" in capsys.readouterr().out
    assert '"document_content"' in (tmp_path / "test.jsonl").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("intrinsic", "options", "error"),
    [
        ("uncertainty", [], "for 'uncertainty' give both --labels and --base-question"),
        ("uncertainty", ["--labels", "certain", "uncertain"], "go together: give both"),
        ("answerability", ["--base-question", "Sure?"], "go together: give both"),
    ],
)
def test_eval_without_both_labels_and_a_question_it_does_not_know_says_what_to_give(
    tmp_path: Path, capsys, intrinsic: str, options: list[str], error: str
) -> None:
    data = ["--data", str(tmp_path / "x"), "--train-data", str(tmp_path / "x")]
    assert main(["eval", intrinsic, *data, "--out", str(tmp_path), *options]) == 2
    assert error in capsys.readouterr().err
