"""`rollout-bot init`: a starter config in the working directory, never over another file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).parents[2]


def test_init_writes_the_minimal_example_and_says_what_to_run_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "rollout-bot.yml"
    assert written.read_text() == (ROOT / "bot" / "examples" / "minimal.yml").read_text()
    assert "Wrote rollout-bot.yml (the minimal example)" in out
    assert "rollout-bot check-config rollout-bot.yml" in out
    assert "rollout-bot serve --config rollout-bot.yml" in out

    assert main(["check-config", "rollout-bot.yml"]) == 0
    assert "checkout-v2: flag checkout_v2, plan safe" in capsys.readouterr().out


def test_init_writes_the_demos_example_where_it_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "phase4.yml", "--example", "genesis-phase4"]) == 0
    assert (tmp_path / "phase4.yml").read_text() == (
        ROOT / "bot" / "examples" / "genesis-phase4.yml"
    ).read_text()


def test_init_refuses_to_overwrite_a_file_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "rollout-bot.yml"
    mine.write_text("channel: '#mine'\n")

    assert main(["init"]) == 1
    err = capsys.readouterr().err
    assert "rollout-bot.yml already exists; nothing written" in err
    assert "rollout-bot init rollout-bot.yml --force" in err
    assert mine.read_text() == "channel: '#mine'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollout-bot.yml"]

    assert main(["init", "--force"]) == 0
    assert "checkout-v2" in mine.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollout-bot.yml"]  # no temp left


def test_init_into_a_missing_directory_says_so_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "no/such/place.yml"]) == 1
    assert "no/such/place.yml: cannot write: No such file or directory; nothing written" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


def test_serve_without_a_config_points_at_init(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROLLOUT_CONFIG", raising=False)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve"]) == 2
    assert "`rollout-bot init` writes rollout-bot.yml to start from" in capsys.readouterr().err
