"""The chart is a pure function of series to a real PNG."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import matplotlib.image as mpimg

from bot.charts import ChartData, GateSeries, chart_size, render_chart

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def sample() -> ChartData:
    error = [(at(h / 4), 0.002 + (0.01 if 14 <= h / 4 <= 15 else 0.0)) for h in range(97)]
    latency = [(at(h / 4), 0.12 + 0.01 * ((h * 7) % 5)) for h in range(97)]
    return ChartData(
        title="phase-4 · last 24 h",
        start=START,
        end=at(24),
        percent=[(START, 5), (at(6), 10), (at(12), 25), (at(15), 0)],
        gates=[
            GateSeries("error_rate", error, threshold=0.005),
            GateSeries("p95_latency", latency, threshold=0.25, unit="s"),
            GateSeries("test_pass_rate", [(at(h), 0.99) for h in range(25)], 0.98, False),
        ],
        markers=[(START, "start"), (at(6), "advance"), (at(12), "advance"), (at(15), "rollback")],
    )


def decode(png: bytes) -> tuple[int, int]:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.shape[1], image.shape[0]


def test_a_chart_is_a_png_of_the_expected_size() -> None:
    data = sample()
    png = render_chart(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert decode(png) == chart_size(data) == (1200, 260 * 4)


def test_the_same_series_give_the_same_picture() -> None:
    assert render_chart(sample()) == render_chart(sample())


def test_a_chart_without_gate_data_still_renders_and_says_why() -> None:
    data = ChartData("x", START, at(24), [(START, 5)], missing="Prometheus unreachable")
    assert decode(render_chart(data)) == (1200, 520)
