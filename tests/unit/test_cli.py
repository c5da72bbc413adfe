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
