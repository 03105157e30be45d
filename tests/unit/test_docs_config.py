"""docs/config.md is generated from the config models and cannot drift from them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from bot import config
from bot.config import Config
from bot.docs_config import reference

DOC = Path(__file__).parents[2] / "docs" / "config.md"


def test_docs_config_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/config.md is out of date with bot/config.py; regenerate it with\n"
        "    .venv/bin/python -m bot.docs_config > docs/config.md"
    )


def test_every_key_has_a_description() -> None:
    models = [
        m
        for m in vars(config).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == config.__name__
    ]
    missing = [
        f"{m.__name__}.{name}"
        for m in models
        for name, field in m.model_fields.items()
        if not field.description
    ]
    assert missing == [], "add Field(description=...) in bot/config.py for these keys"
    text = reference()
    for name, field in Config.model_fields.items():
        assert f"| `{field.alias or name}` |" in text


def test_the_reference_reads_like_the_yaml() -> None:
    text = reference()
    assert "## `rollouts[]`" in text
    assert "| `for` | tiered duration | `{canary: 5m, progressive: 5m, final: 10m}` |" in text
    assert "| `plan` | string | `safe` |" in text
    assert "| `every` | duration | **required** |" in text
    assert "| `token` | string (optional), at least 16 long | none |" in text
    assert "| `safe` | 5 % for 1d, 10 % for 1d" in text
