"""The example configs that ship inside the package: `rollout-bot demo` runs
genesis-phase4.yml, and `rollout-bot init` writes one to the working directory to start
from. They are read through `importlib.resources`, so they are found wherever the package
is installed (a wheel, an image, the checkout), whatever the working directory."""

from __future__ import annotations

from importlib import resources

from bot.config import Config, parse_config

DEMO = "genesis-phase4"  # the demo's: the 7-day plan, tiered gates, the on-call chain
STARTER = "minimal"  # what `rollout-bot init` writes unless told otherwise


def names() -> list[str]:
    """Every example by name, without `.yml`."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".yml") for f in files if f.name.endswith(".yml"))


def text(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.yml").read_text(encoding="utf-8")


def source(name: str) -> str:
    """How errors and the demo's header name an example."""
    return f"{name}.yml (built-in example)"


def load(name: str) -> Config:
    return parse_config(text(name), source(name))
