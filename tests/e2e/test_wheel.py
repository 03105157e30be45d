"""The bot as someone who installs the wheel gets it: `pip install rollout_bot-….whl` into a
fresh venv, then `rollout-bot demo` and `rollout-bot init` from an empty directory, with no
checkout in reach. And the wheel itself: every file of the packages, the example configs
and the migrations among them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "storage")
BUILD_TIMEOUT = 600  # seconds: pip fetches setuptools for the isolated build
INSTALL_TIMEOUT = 900  # the wheel's dependencies (numpy, matplotlib, …) into a fresh venv
# The demo's clock runs in real time: at its default 10,080× a bot slowed by a loaded machine
# falls hours of demo time behind, its gates go stale and the soaks start again, and the demo
# gives up after ten days. At 3,000× (a week in about 3½ minutes) it keeps up.
DEMO_SPEED = "3000"
DEMO_TIMEOUT = 900


def run(args: list[str | Path], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def package_files() -> list[str]:
    """Every file of the packages in the checkout (tracked, or new and not ignored), as the
    wheel names them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(name for name in listed if (ROOT / name).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a fresh copy of the sources, so that no `build/` directory left by
    an earlier build can lend it a file the sources no longer have."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in package_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, source],
        cwd=source, timeout=BUILD_TIMEOUT)
    (built,) = dist.glob("rollout_bot-*.whl")
    return built


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    names = wheel_names(wheel)
    missing = [name for name in package_files() if name not in names]
    assert not missing, f"files of the packages that the wheel leaves out: {missing}"

    migrations = sorted(p.name for p in (ROOT / "storage/migrations/versions").glob("0*.py"))
    assert len(migrations) >= 7
    for name in migrations:
        assert f"storage/migrations/versions/{name}" in names
    assert {"storage/migrations/env.py", "storage/migrations/script.py.mako"} <= names
    assert {"bot/examples/minimal.yml", "bot/examples/genesis-phase4.yml"} <= names
    assert "rollout_bot-0.1.0.dist-info/entry_points.txt" in names


# Run by the checkout's interpreter with an audit hook: every file under the packages that
# the bot opens while it migrates a new database, loads each example and imports every
# module (bytecode aside; the migrations as alembic loads them), printed as a JSON list of
# paths relative to the checkout.
OPENS = """
import json, pkgutil, importlib, sys, asyncio, tempfile
from pathlib import Path
root = Path(sys.argv[1])
roots = tuple(str(root / p) + "/" for p in ("bot", "commands", "storage"))
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(roots):
        if "__pycache__" not in args[0]:
            opened.add(str(Path(args[0]).relative_to(root)))
sys.addaudithook(hook)
from storage import db
from bot import examples
async def migrate(url):
    engine = db.create_engine(url)
    await db.migrate(engine)
    await engine.dispose()
with tempfile.TemporaryDirectory() as here:
    asyncio.run(migrate(db.default_url(here)))
for name in examples.names():
    examples.load(name)
for package in ("bot", "commands", "storage"):
    for info in pkgutil.walk_packages([str(root / package)], package + "."):
        if not info.name.endswith(".__main__") and not info.name.startswith("storage.migrations"):
            importlib.import_module(info.name)  # alembic loads the migrations, above
print(json.dumps(sorted(opened)))
"""


def test_every_file_the_bot_opens_from_its_packages_is_in_the_wheel(
    wheel: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # source files, read afresh
    result = run([sys.executable, "-c", OPENS, ROOT], cwd=ROOT, timeout=300, env=env)
    opened = json.loads(result.stdout.strip().splitlines()[-1])
    assert "storage/migrations/versions/0001_initial.py" in opened  # the hook saw the run
    assert "bot/examples/genesis-phase4.yml" in opened
    names = wheel_names(wheel)
    assert [name for name in opened if name not in names] == []


def fresh_environment() -> dict[str, str]:
    """The environment of someone who never saw the checkout: no PYTHONPATH into it, no
    Slack tokens or config of the machine's own."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ROLLOUT_CONFIG", "DATABASE_URL")
    return {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("SLACK_")
    }


@pytest.mark.timeout(INSTALL_TIMEOUT + DEMO_TIMEOUT + 300)
def test_from_the_wheel_the_demo_runs_to_100_percent_and_init_writes_a_config_that_checks(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    env = fresh_environment()
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path, timeout=INSTALL_TIMEOUT, env=env)
    python, rollout_bot = venv / "bin" / "python", venv / "bin" / "rollout-bot"
    run([python, "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path,
        timeout=INSTALL_TIMEOUT, env=env)
    here = tmp_path / "empty"
    here.mkdir()

    where = run([python, "-c", "import bot, storage; print(bot.__file__, storage.__file__)"],
                cwd=here, timeout=60, env=env).stdout
    assert str(ROOT) not in where and str(venv) in where  # the installed copy, not the checkout

    demo = run([rollout_bot, "demo", "--no-breach", "--speed", DEMO_SPEED], cwd=here,
               timeout=DEMO_TIMEOUT, env=env)
    transcript = demo.stdout
    assert "config    genesis-phase4.yml (built-in example) · rollout phase-4" in transcript
    assert "@Cora advanced phase-4 75 % → 100 %" in transcript
    assert "rollout-bot completed phase-4 at 100 %" in transcript
    assert "End state: phase-4 completed at 100 %" in transcript
    assert list(here.iterdir()) == []  # the demo's database was a temporary one

    init = run([rollout_bot, "init"], cwd=here, timeout=60, env=env)
    assert "Wrote rollout-bot.yml (the minimal example)" in init.stdout
    assert "rollout-bot check-config rollout-bot.yml" in init.stdout
    check = run([rollout_bot, "check-config", "rollout-bot.yml"], cwd=here, timeout=60, env=env)
    assert "checkout-v2: flag checkout_v2, plan safe (7d in all)" in check.stdout
    assert "stage 6: 100 % for 2d" in check.stdout
