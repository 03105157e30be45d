"""Which gate queries are measured for many flags in one query, how they are rewritten, and
why the others are not."""

from __future__ import annotations

from pathlib import Path

import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.domain.batched_query import Batched, PerRollout, escape_regex, plan

BATCHED = {
    'sum(rate(errors{flag="{flag}",code=~"5.."}[5m])) / sum(rate(requests{flag="{flag}"}[5m]))': (
        'sum by (flag) (rate(errors{flag=~"a|b",code=~"5.."}[5m]))'
        ' / sum by (flag) (rate(requests{flag=~"a|b"}[5m]))'
    ),
    'histogram_quantile(0.95, sum by (le) (rate(latency_bucket{flag="{flag}"}[5m])))': (
        'histogram_quantile(0.95, sum by (le, flag) (rate(latency_bucket{flag=~"a|b"}[5m])))'
    ),
    'sum(x{flag="{flag}"}) / on(job) group_left sum by (job) (y{flag="{flag}"})': (
        'sum by (flag) (x{flag=~"a|b"}) / on (job, flag) group_left () sum by (job, flag) '
        '(y{flag=~"a|b"})'
    ),
    'max without (instance) (up{flag="{flag}"}) < bool 1': (
        'max without (instance) (up{flag=~"a|b"}) < bool 1'
    ),
    'avg(rate(x{feature="{flag}"}[1m] offset 5m)) * 100': (
        'avg by (feature) (rate(x{feature=~"a|b"}[1m] offset 5m)) * 100'
    ),
    'x{flag="{flag}"}': 'x{flag=~"a|b"}',
}

NOT_BATCHED = {
    'sum(rate(x{flag="{flag}"}[5m])) or vector(0)': "`vector()`",
    'absent(x{flag="{flag}"})': "`absent()`",
    'label_replace(x{flag="{flag}"}, "flag", "z", "flag", ".*")': "`label_replace()`",
    'topk(1, x{flag="{flag}"})': "`topk`",
    'scalar(sum(x{flag="{flag}"}))': "`scalar()`",
    'sum without (flag) (x{flag="{flag}"})': "`without (flag)`",
    'x{flag="{flag}"} / ignoring (flag) y{flag="{flag}"}': "`ignoring (flag)`",
    'x{flag="{flag}"} / y': "does not select by `{flag}`",
    'x{flag!="{flag}"}': "matched with `=`",
    'x{flag="{flag}-v2"}': "a whole label value",
    "up": "does not name `{flag}`",
    'sum(x{flag="{flag}"': "does not parse",
}


@pytest.mark.parametrize("query", BATCHED)
def test_a_query_that_keeps_the_flag_label_is_batched_by_it(query: str) -> None:
    how = plan(query)
    assert isinstance(how, Batched)
    text = how.query(["b", "a", "a"])
    assert text == BATCHED[query]
    promql_parser.parse(text)  # what is sent is PromQL


@pytest.mark.parametrize("query", NOT_BATCHED)
def test_a_query_that_could_mix_flags_is_measured_per_rollout_with_the_reason(query: str) -> None:
    how = plan(query)
    assert isinstance(how, PerRollout)
    assert NOT_BATCHED[query] in how.reason


def test_flag_names_are_escaped_in_the_regex_and_the_string() -> None:
    how = plan('sum(x{flag="{flag}"})')
    assert isinstance(how, Batched)
    text = how.query(["checkout.v2", 'odd"name', "a|b", "c\\d"])
    parsed = promql_parser.parse(text)
    (matcher,) = parsed.expr.matchers.matchers
    assert matcher.value == 'a\\|b|c\\\\d|checkout\\.v2|odd"name'


@given(st.text(min_size=1, max_size=20))
def test_an_escaped_name_matches_itself_alone(name: str) -> None:
    import re

    pattern = re.compile(escape_regex(name), re.DOTALL)
    assert pattern.fullmatch(name)
    assert not pattern.fullmatch(name + "x")


def test_check_config_says_which_gates_batch_and_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bot.yml"
    config.write_text(
        "gates:\n"
        "  errors:\n    query: 'sum(rate(errors{flag=\"{flag}\"}[5m]))'\n    fail_above: 0.01\n"
        "  floor:\n    query: 'sum(rate(x{flag=\"{flag}\"}[5m])) or vector(0)'\n"
        "    fail_above: 1\n"
        "rollouts:\n  - {name: a, flag: a, gates: [errors, floor]}\n"
    )
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "errors: batched — one query for every rollout, grouped by flag" in out
    assert "floor: one query per rollout — `vector()` answers one series" in out
