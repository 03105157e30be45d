"""What an operator installs from: the Slack manifest and the container image."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def test_the_manifest_declares_the_command_interactivity_and_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/rollout"
    assert command["url"].endswith("/slack/events")
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == command["url"]
    assert isinstance(settings["socket_mode_enabled"], bool)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:write"} <= scopes  # exactly: see test_scopes


def test_the_image_runs_the_bot_as_a_non_root_user_with_data_on_a_volume() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'VOLUME ["/data"]' in lines
    assert any("DATABASE_URL=sqlite+aiosqlite:////data/" in line for line in lines)
    assert lines[-1] == 'CMD ["rollout-bot", "serve"]'
