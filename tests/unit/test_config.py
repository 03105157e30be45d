"""The YAML config: the design's example loads as is; mistakes name the key and the line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot import examples
from bot.cli import main
from bot.config import load_config, parse_config
from bot.domain.plans import BUILTIN_PLANS, Tier
from bot.errors import ConfigError

ROOT = Path(__file__).parents[2]


def design_example() -> str:
    return (ROOT / "tests" / "fixtures" / "design_example.yml").read_text()


def test_the_design_example_loads_as_is() -> None:
    config = parse_config(design_example())
    spec = config.specs()["phase-4"]
    assert spec.plan.percents == (5, 10, 25, 50, 75, 100)
    assert config.plan("weekend").stages[0].flags == ("otel_enabled", "error_handling_enabled")
    gate = config.gates["error_rate"]
    assert gate.fail_above is not None and gate.fail_above.at(Tier.CANARY) == 0.005
    assert gate.for_.at(Tier.FINAL) == timedelta(minutes=10)
    assert [lvl.user for lvl in config.oncall.chain] == ["U0FORGE", "U0HUDSON", "U0CORA"]


@pytest.mark.parametrize("path", sorted((ROOT / "bot" / "examples").glob("*.yml")), ids=str)
def test_each_example_loads_from_the_package_by_its_name(path: Path) -> None:
    assert load_config(path).rollouts
    assert examples.load(path.stem).rollouts == load_config(path).rollouts


def test_builtin_plans_match_the_field_reports() -> None:
    safe = BUILTIN_PLANS["safe"]
    assert safe.percents == (5, 10, 25, 50, 75, 100)
    assert safe.total_soak == timedelta(days=7)
    six = BUILTIN_PLANS["six-day"]
    assert six.stages[0].soak == timedelta(hours=12)
    assert six.total_soak == timedelta(days=6)
    assert BUILTIN_PLANS["fast"].total_soak == timedelta(days=3)
    assert BUILTIN_PLANS["instant"].percents == (100,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rollouts:\n  - name: x\n    flag: f\n    plna: safe\n",
            "4: rollouts.0.plna: unknown key 'plna' (did you mean 'plan'?)",
        ),
        ("chanel: '#x'\n", "1: chanel: unknown key 'chanel' (did you mean 'channel'?)"),
        (
            "rollouts:\n  - name: x\n    flag: f\n    plan: nope\n",
            "4: rollouts.0.plan: unknown plan 'nope'; known: fast, instant, safe, six-day",
        ),
        (
            "rollouts:\n  - name: x\n    flag: f\n    gates: [g]\n",
            "4: rollouts.0.gates.0: unknown gate 'g'",
        ),
        ("timezone: Mars/Base\n", "1: timezone: unknown timezone 'Mars/Base'"),
        ("daily_summary: '9am'\n", "1: daily_summary:"),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 50, soak: 1h}\n"
            "      - {percent: 10, soak: 1h}\n",
            "3: plans.p.stages: stage percents must strictly increase, got [50, 10]",
        ),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 150, soak: 1h}\n",
            "4: plans.p.stages.0.percent: Input should be less than or equal to 100",
        ),
        (
            "gates:\n  g:\n    query: up\n    fail_above: 1\n    for: 5 minutes\n",
            "5: gates.g.for.canary: '5 minutes' is not a duration",
        ),
        ("gates:\n  g:\n    query: up\n", "2: gates.g: a gate needs `fail_above` or `fail_below`"),
        (
            "oncall:\n  chain:\n    - {wait: 5m}\n",
            "3: oncall.chain.0: a chain level names exactly one of `user` or `group`",
        ),
        (
            "rollouts:\n  - name: x\n    flag: f\n  - name: x\n    flag: g\n",
            "4: rollouts.1.name: duplicate rollout name 'x'",
        ),
        ("rollouts: [\n", "not valid YAML"),
        ("- just\n- a list\n", "the config must be a mapping"),
    ],
)
def test_errors_name_the_field_and_the_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "bot.yml")
    assert expected in caught.value.report()
    assert caught.value.report().startswith("bot.yml:")


def test_check_config_prints_each_rollouts_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "bot" / "examples" / "genesis-phase4.yml")]) == 0
    out = capsys.readouterr().out
    assert "phase-4: flag phase_4_deployment, plan genesis-safe (7d in all)" in out
    assert "stage 1:   5 % for 1d, switches on otel_enabled, error_handling_enabled" in out
    assert "stage 6: 100 % for 2d" in out
    assert (
        "gate error_rate: fails above 0.005 / 0.01 / 0.01 for 5m / 5m / 10m"
        " (canary / progressive / final), measured every 30s, no data: hold"
    ) in out
    assert "gate test_pass_rate: fails below 0.98 / 0.97 / 0.97 for 10m / 10m / 10m" in out


def test_check_config_fails_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("rollouts:\n  - name: x\n    flagg: f\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: rollouts.0.flagg: unknown key 'flagg'" in err


ROLLOUTS_ON_ONE_FLAG = """\
rollouts:
  - name: phase-4
    flag: phase_4
  - name: phase-4-again
    flag: phase_4
"""
GATE = "gates:\n  error_rate:\n    query: up\n    fail_above: 1\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ROLLOUTS_ON_ONE_FLAG,
            "5: rollouts.1.flag: flag 'phase_4' is already rolled out by 'phase-4' (line 3);"
            " two rollouts would set its percentage in turn",
        ),
        (
            GATE + "    interval: 0s\n",
            "5: gates.error_rate.interval: must be more than 0s: it is how often the gate is"
            " measured",
        ),
        (
            GATE + "    interval: -30\n",
            "5: gates.error_rate.interval: a duration cannot be negative (got -30s)",
        ),
        (
            GATE + "    no_data_grace: -10m\n",
            "5: gates.error_rate.no_data_grace: a duration cannot be negative (got '-10m')",
        ),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 5, soak: -1h}\n",
            "4: plans.p.stages.0.soak: a duration cannot be negative (got '-1h')",
        ),
        (
            "oncall:\n  chain:\n    - user: U0FORGE\n      wait: -5m\n",
            "4: oncall.chain.0.wait: a duration cannot be negative (got '-5m')",
        ),
        (
            "checkpoints:\n  - {until: 6h, every: 15m}\n  - {every: 0s}\n",
            "3: checkpoints.1.every: must be more than 0s: it is how often a checkpoint is posted",
        ),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 5, soak: 1h}\n"
            "    checkpoints:\n      - {every: 0s}\n",
            "6: plans.p.checkpoints.0.every: must be more than 0s",
        ),
        (
            "oncall:\n  remind_after: 0s\n",
            "2: oncall.remind_after: must be more than 0s",
        ),
        (
            "prometheus:\n  timeout: 0s\n",
            "2: prometheus.timeout: must be more than 0s",
        ),
        (
            GATE + "    interval: 5m\n    for: 1m\n",
            "6: gates.error_rate.for: the 1m window is shorter than the gate's interval (5m): it"
            " would be judged on less than one measurement; make `for` at least the interval",
        ),
        (
            GATE + "    interval: 1m\n    for:\n      canary: 5m\n      progressive: 5m\n"
            "      final: 30s\n",
            "9: gates.error_rate.for.final: the 30s window is shorter than the gate's interval",
        ),
        (
            "plans:\n  safe:\n    stages:\n      - {percent: 50, soak: 1h}\n"
            "rollouts:\n  - {name: x, flag: f, plan: safe}\n",
            "2: plans.safe: 'safe' is a built-in plan (7 days: 24 h soaks, 48 h watch at 100 %);"
            " give the custom plan another name, e.g. 'safe-custom'",
        ),
        (
            "plans:\n  instant:\n    stages:\n      - {percent: 100, soak: 5m}\n",
            "2: plans.instant: 'instant' is a built-in plan",
        ),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 10, soak: 1h}\n"
            "      - {percent: 10, soak: 1h}\n",
            "3: plans.p.stages: stage percents must strictly increase, got [10, 10]",
        ),
        (
            "plans:\n  p:\n    stages:\n      - {percent: 25, soak: 1h}\n"
            "      - {percent: 5, soak: 1h}\n      - {percent: 100, soak: 1h}\n",
            "3: plans.p.stages: stage percents must strictly increase, got [25, 5, 100]",
        ),
    ],
    ids=[
        "two-rollouts-one-flag",
        "interval-zero",
        "interval-negative",
        "grace-negative",
        "soak-negative",
        "wait-negative",
        "checkpoint-every-zero",
        "plan-checkpoint-every-zero",
        "remind-after-zero",
        "timeout-zero",
        "for-shorter-than-interval",
        "tiered-for-shorter-than-interval",
        "plan-named-safe",
        "plan-named-instant",
        "percents-repeat",
        "percents-fall",
    ],
)
def test_check_config_refuses_a_config_that_cannot_be_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(text)
    assert main(["check-config", str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert any(line.startswith(f"{bad}:{expected}") for line in lines), captured.err
    assert captured.out == ""
