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


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split at each FROM."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([line])
        elif line and not line.startswith("#") and stages:
            stages[-1].append(line)
    return stages


def test_the_image_is_built_in_two_stages_and_its_runtime_copies_only_the_wheel() -> None:
    build, runtime = dockerfile_stages()
    assert build[0].endswith(" AS build")
    assert any("pip wheel" in line and "--no-deps" in line for line in build)
    sources = {src for line in build if line.startswith("COPY ") for src in line.split()[1:-1]}
    assert sources == {"pyproject.toml", "README.md", "bot", "commands", "storage"}
    copies = [line for line in runtime if line.startswith(("COPY ", "ADD "))]
    assert copies == ["COPY --from=build /wheels /tmp/wheels"]
    (install,) = [line for line in runtime if line.startswith("RUN ")]
    assert "pip install --quiet /tmp/wheels/rollout_bot-*.whl" in install
    assert "rm -rf /tmp/wheels" in install


def test_the_images_default_config_is_the_packages_starter_written_by_init() -> None:
    _, runtime = dockerfile_stages()
    (install,) = [line for line in runtime if line.startswith("RUN ")]
    written = install.split("rollout-bot init ", 1)[1].split()[0]
    assert f"ROLLOUT_CONFIG={written}" in " ".join(runtime)
    (check,) = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in check


def test_the_build_context_holds_only_what_the_wheel_is_built_from() -> None:
    rules = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "bot", "commands", "storage"}
