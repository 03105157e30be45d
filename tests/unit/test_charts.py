"""The chart is a pure function of series to a real PNG; the thresholds it draws step with
the tier of the exposure."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib.image as mpimg
from matplotlib.dates import num2date

from bot.domain.assess import GateRule
from bot.domain.plans import Tier
from bot.render.charts import (
    MARKER_LABEL,
    ChartData,
    GateSeries,
    alt_text,
    build_figure,
    chart_size,
    render_chart,
    zone_name,
)
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


def marker_labels(data: ChartData) -> tuple[list[str], list[Any], Any]:
    """The texts and drawn boxes (pixels) of the marker labels, and the traffic panel's box."""
    fig = build_figure(data)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    labels = [t for t in fig.axes[0].texts if t.get_gid() == MARKER_LABEL]
    return (
        [t.get_text() for t in labels],
        [t.get_window_extent(renderer) for t in labels],
        fig.axes[0].get_window_extent(renderer),
    )


def busy_day() -> ChartData:
    """A morning of hesitation: twelve changes within forty minutes, then a rollback."""
    verbs = ["start", "pause", "resume", "advance", "pause", "resume", "advance", "pause",
             "resume", "pause", "resume", "advance"]
    markers = [(at(2 + i / 18), verb) for i, verb in enumerate(verbs)]
    markers.append((at(2.75), "rollback"))
    percent = [(START, 0), (at(2), 5), (at(2 + 3 / 18), 10), (at(2 + 6 / 18), 25),
               (at(2 + 11 / 18), 50), (at(2.75), 0)]
    return ChartData("phase-4 · last 24 h", START, at(24), percent, markers=markers)


def test_labels_of_events_close_together_do_not_overlap() -> None:
    data = busy_day()
    texts, boxes, panel = marker_labels(data)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (texts, boxes)
        assert panel.x0 <= a.x0 and a.x1 <= panel.x1 and panel.y0 <= a.y0 and a.y1 <= panel.y1
    # Nothing is lost: every change is named in some label, as often as it happened.
    words = " ".join(texts)
    assert words.count("rollback") == 1
    for verb, times in (("pause", 4), ("resume", 4), ("advance", 3)):
        shown = sum(int(m[1] or 1) for m in re.finditer(rf"{verb}(?: ×(\d+))?", words))
        assert shown == times, texts


def test_events_far_apart_each_get_their_own_label_just_above_the_marker() -> None:
    fig = build_figure(sample())
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == MARKER_LABEL]
    assert [t.get_text() for t in labels] == ["start", "advance", "advance", "rollback"]
    above = {
        round(t.get_window_extent(renderer).y0 - ax.transData.transform(t.xy)[1])
        for t in labels
    }
    assert len(above) == 1 and above.pop() > 0  # nothing to stagger: each at the same height


def test_the_time_axis_covers_the_whole_window() -> None:
    data = sample()
    low, high = build_figure(data).axes[-1].get_xlim()
    assert num2date(low) == data.start and num2date(high) == data.end
    assert data.end - data.start == timedelta(hours=24)


def test_the_alt_text_says_what_the_chart_shows() -> None:
    said = alt_text(sample(PARIS))
    assert said.startswith(
        "Chart of phase-4 over the last 24 h, from 02 Nov 10:00 to 03 Nov 10:00 (Europe/Paris)."
    )
    assert "5 % at the start and 0 % at the end" in said
    assert "started at 02 Nov 10:00, advanced at 02 Nov 16:00, advanced at 02 Nov 22:00, " \
        "rolled back at 01:00" in said
    assert "error_rate, highest 0.012, went above its threshold" in said
    assert "p95_latency, highest 0.16s, stayed below its threshold" in said
    assert "test_pass_rate, lowest 0.99, stayed above its threshold" in said
    assert len(said) <= 1000


def test_a_chart_without_gates_says_why_in_its_alt_text() -> None:
    data = ChartData("x · f", START, at(24), [(START, 5)], missing="Prometheus unreachable")
    assert alt_text(data).endswith("No gate is drawn: Prometheus unreachable.")
    crowded = replace(busy_day(), markers=[(at(h / 10), "pause") for h in range(200)])
    assert len(alt_text(crowded)) <= 1000
    assert "and 193 more changes" in alt_text(crowded)
