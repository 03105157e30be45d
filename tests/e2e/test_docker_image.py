"""The container image, built and run by a real Docker daemon: `docker run IMAGE rollout-bot
demo` completes, and the default command serves until its health check says healthy.

Skipped, saying so, where no Docker daemon answers. ROLLOUT_BOT_PYTHON_IMAGE names the base
image where Docker Hub's python:3.11-slim cannot be pulled (any image with Python 3.11+ and
its venv module)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_wheel import DEMO_SPEED, DEMO_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1200  # the wheel's dependencies, fetched inside the build
HEALTHY_WITHIN = 180  # seconds: the first health check runs 30 s after the start


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def docker_answers() -> bool:
    try:
        return docker("info", timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not docker_answers(), reason="no Docker daemon answers here")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    tag = f"rollout-bot-test:{uuid.uuid4().hex[:12]}"
    base = os.environ.get("ROLLOUT_BOT_PYTHON_IMAGE")
    built = docker(
        "build", "--network", "host", "-t", tag,
        *(["--build-arg", f"PYTHON_IMAGE={base}"] if base else []),
        str(ROOT), timeout=BUILD_TIMEOUT,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield tag
    docker("rmi", "-f", tag)


@pytest.mark.timeout(BUILD_TIMEOUT + DEMO_TIMEOUT + 300)
def test_the_image_runs_the_demo_to_100_percent(image: str) -> None:
    demo = docker("run", "--rm", image, "rollout-bot", "demo", "--no-breach",
                  "--speed", DEMO_SPEED, timeout=DEMO_TIMEOUT)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "config    genesis-phase4.yml (built-in example)" in demo.stdout
    assert "End state: phase-4 completed at 100 %" in demo.stdout


@pytest.mark.timeout(BUILD_TIMEOUT + HEALTHY_WITHIN + 300)
def test_the_image_serves_as_a_non_root_user_until_its_health_check_is_green(
    image: str,
) -> None:
    name = f"rollout-bot-test-{uuid.uuid4().hex[:12]}"
    started = docker("run", "-d", "--name", name, image)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN
        health = ""
        while time.monotonic() < deadline and health != "healthy":
            health = docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
            assert health in ("starting", "healthy"), docker("logs", name).stderr[-3000:]
            time.sleep(1)  # polling the daemon, not waiting in place of a condition
        assert health == "healthy", docker("logs", name).stderr[-3000:]
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        logs = docker("logs", name)
        assert "rollout-bot listening on http://0.0.0.0:3000" in logs.stdout + logs.stderr
    finally:
        docker("rm", "-f", name)
