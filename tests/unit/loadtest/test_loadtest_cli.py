"""`alora-serve loadtest`'s options and exit status, with the run itself stood in for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alora_serve.cli import main
from alora_serve.loadtest import runner
from alora_serve.loadtest.samples import summarize


@pytest.mark.parametrize("option", ["--users", "--run-time"])
def test_zero_users_or_seconds_are_refused(option: str, capsys) -> None:
    """Found by review: `--users 0` became one user without a word."""
    with pytest.raises(SystemExit) as exit_info:
        main(["loadtest", option, "0"])
    assert exit_info.value.code == 2
    assert f"{option}: must be at least 1, not 0" in capsys.readouterr().err


def _summary(calls: int, locust_exit_code: int, **errors_by_code: int) -> dict:
    """What the command reads of a run's summary."""
    return {
        "calls": calls,
        "per_s": calls / 10,
        "errors_by_code": errors_by_code,
        "goodput": {},
        "capacity": None,
        "locust_exit_code": locust_exit_code,
    }


def _stood_in(monkeypatch: pytest.MonkeyPatch, summary: dict) -> list[runner.LoadRun]:
    runs: list[runner.LoadRun] = []

    def run(load: runner.LoadRun) -> dict:
        runs.append(load)
        return summary

    monkeypatch.setattr(runner, "run", run)
    return runs


@pytest.mark.parametrize(
    ("exit_code", "calls", "message"),
    [
        (2, 10, "Locust exited with code 2"),
        (0, 0, "the run made no calls"),
    ],
)
def test_a_run_that_measured_nothing_fails(
    exit_code: int, calls: int, message: str, monkeypatch, tmp_path: Path, capsys
) -> None:
    """Found by review: the exit status looked only at the calls' statuses, so a run
    whose Locust failed, or that made no call, passed."""
    runs = _stood_in(monkeypatch, _summary(calls, exit_code))
    assert main(["loadtest", "--users", "3", "--run-time", "10", "--out", str(tmp_path)]) == 1
    assert f"error: {message}" in capsys.readouterr().err
    (load,) = runs
    assert load.profile.users == 3 and load.profile.run_time_s == 10
    assert load.metrics_url == runner.METRICS_URL


def test_a_run_with_only_tolerated_errors_passes(monkeypatch, tmp_path: Path) -> None:
    _stood_in(monkeypatch, _summary(10, 0, RESOURCE_EXHAUSTED=4))
    args = ["loadtest", "--profile", "overload", "--capacity", "0.5", "--out", str(tmp_path)]
    assert main(args) == 0
    assert main(["loadtest", "--out", str(tmp_path)]) == 1  # smoke tolerates no refusal


def test_the_documented_runs_show_why_a_run_failed_before_reading_it(
    tmp_path: Path, capsys
) -> None:
    """Found by review: bench/loadtests.py read summary.json first, so a run that failed
    before writing it showed as a missing file."""
    from bench.loadtests import _summary

    log = tmp_path / "main_job.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert _summary(tmp_path / "summary.json", 1, log) is None
    err = capsys.readouterr().err
    assert "failed (exit code 1): it wrote no summary" in err
    assert err.rstrip().endswith("line 99") and "line 59" not in err
    measured = {**summarize([], 8.0), "calls": 5, "locust_exit_code": 0}
    (tmp_path / "summary.json").write_text(json.dumps(measured))
    assert _summary(tmp_path / "summary.json", 1, log) == measured  # errors are a result
    assert "unexpected call errors" in capsys.readouterr().out
    (tmp_path / "summary.json").write_text(json.dumps({**measured, "calls": 0}))
    assert _summary(tmp_path / "summary.json", 1, log) is None
