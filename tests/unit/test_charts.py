"""The chart is a pure function of series to a real PNG; the thresholds it draws step with
the tier of the exposure."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib.image as mpimg

from bot.charts import ChartData, GateSeries, chart_size, render_chart, zone_name
from bot.domain.assess import GateRule
from bot.domain.plans import Tier
from bot.services.checkpoints import threshold_steps

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
P95 = GateRule(
    "p95_latency",
    "q",
    fail_above={Tier.CANARY: 0.25, Tier.PROGRESSIVE: 0.3, Tier.FINAL: 0.5},
)
PASS_RATE = GateRule("test_pass_rate", "q", fail_below={tier: 0.98 for tier in Tier})


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


# as the service gives them: the level before the window, then each change in it
PERCENT = [(START, 0), (START, 5), (at(6), 10), (at(12), 25), (at(15), 0)]


def sample(zone: ZoneInfo | None = None) -> ChartData:
    error = [(at(h / 4), 0.002 + (0.01 if 14 <= h / 4 <= 15 else 0.0)) for h in range(97)]
    latency = [(at(h / 4), 0.12 + 0.01 * ((h * 7) % 5)) for h in range(97)]
    return ChartData(
        title="phase-4 · last 24 h",
        start=START,
        end=at(24),
        percent=PERCENT,
        gates=[
            GateSeries("error_rate", error, thresholds=[(START, 0.005)]),
            GateSeries("p95_latency", latency, threshold_steps(P95, PERCENT), unit="s"),
            GateSeries(
                "test_pass_rate",
                [(at(h), 0.99) for h in range(25)],
                threshold_steps(PASS_RATE, PERCENT),
                fail_above=False,
            ),
        ],
        markers=[(START, "start"), (at(6), "advance"), (at(12), "advance"), (at(15), "rollback")],
        zone=zone or UTC,
    )


def decode(png: bytes) -> tuple[int, int]:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.shape[1], image.shape[0]


def test_the_threshold_steps_where_the_percentage_changes_tier() -> None:
    # 5 % and 10 % are canary, 25 % progressive, and a rollback to 0 % counts as canary
    assert threshold_steps(P95, PERCENT) == [(START, 0.25), (at(12), 0.3), (at(15), 0.25)]


def test_a_threshold_the_same_in_every_tier_is_a_single_step() -> None:
    assert threshold_steps(PASS_RATE, PERCENT) == [(START, 0.98)]


def test_changes_at_the_same_moment_leave_the_last_one() -> None:
    percent = [(START, 10), (at(2), 25), (at(2), 60)]
    assert threshold_steps(P95, percent) == [(START, 0.25), (at(2), 0.5)]


def test_a_rule_without_threshold_gives_no_steps() -> None:
    assert threshold_steps(GateRule("g", "q"), PERCENT) == []
    assert threshold_steps(None, PERCENT) == []


def test_the_time_axis_names_its_zone() -> None:
    assert zone_name(PARIS) == "Europe/Paris"
    assert zone_name(UTC) == "UTC"


def test_a_chart_is_a_png_of_the_expected_size() -> None:
    data = sample()
    png = render_chart(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert decode(png) == chart_size(data) == (1200, 260 * 4)


def test_a_chart_in_another_zone_has_the_same_size_and_other_labels() -> None:
    local = render_chart(sample(PARIS))
    assert decode(local) == (1200, 260 * 4)
    assert local != render_chart(sample())


def test_the_same_series_give_the_same_picture() -> None:
    assert render_chart(sample()) == render_chart(sample())


def test_a_chart_without_gate_data_still_renders_and_says_why() -> None:
    data = ChartData("x", START, at(24), [(START, 5)], missing="Prometheus unreachable")
    assert decode(render_chart(data)) == (1200, 520)


def test_a_threshold_missing_in_a_tier_leaves_a_gap() -> None:
    partial = GateRule("g", "q", fail_above={Tier.CANARY: 0.25})
    steps = threshold_steps(partial, PERCENT)
    assert steps == [(START, 0.25), (at(12), None), (at(15), 0.25)]
    data = ChartData("x", START, at(24), PERCENT, [GateSeries("g", [(START, 0.1)], steps)])
    assert decode(render_chart(data)) == (1200, 520)
