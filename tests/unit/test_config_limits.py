"""A config that is a bomb or a mistake is refused at once with a line, never a hang or a
traceback: aliases of aliases ("billion laughs") and deep nesting."""

from __future__ import annotations

import time

import pytest

from bot.config import MAX_YAML_DEPTH, MAX_YAML_NODES, parse_config
from bot.errors import ConfigError

LAUGHS = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "rollouts: []",
    ]
)


def refusal(text: str) -> str:
    started = time.process_time()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rollout.yml")
    assert time.process_time() - started < 10, "the refusal itself must not take long"
    return caught.value.report()


def test_a_billion_laughs_is_refused_with_what_it_is() -> None:
    report = refusal(LAUGHS)
    assert report.startswith("rollout.yml:")
    assert f"expands to more than {MAX_YAML_NODES:,} values (aliases of aliases?)" in report


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 400, 5_000, 100_000])
def test_deep_nesting_is_refused_with_a_line(depth: int) -> None:
    text = "channel: '#deployments'\nrollouts: " + "[" * depth + "]" * depth + "\n"
    report = refusal(text)
    assert f"nests deeper than {MAX_YAML_DEPTH} levels" in report
    assert report.startswith("rollout.yml:1:") or report.startswith("rollout.yml:2:")


def test_an_alias_used_a_few_times_is_still_a_config() -> None:
    text = """
gates:
  error_rate:
    query: 'errors{flag="{flag}"}'
    fail_above: &limits {canary: 0.01, progressive: 0.02, final: 0.02}
  latency:
    query: 'latency{flag="{flag}"}'
    fail_above: *limits
rollouts:
  - {name: a, flag: a, gates: [error_rate, latency]}
"""
    config = parse_config(text)
    assert config.gates["latency"].fail_above == config.gates["error_rate"].fail_above
