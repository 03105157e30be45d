"""Fault tests: each injects one kind of fault on purpose, bounded in time and count.

`scaled(small, full)` is how many times a test repeats its fault: `small` on every run
(CI), `full` when the environment says `CHAOS_SCALE=full` (`make chaos`). A number in
`CHAOS_SCALE` multiplies the small count instead. Each test prints its figures (shown by
`make chaos`, which runs pytest with -s).

The real Prometheus, Alertmanager and PostgreSQL fixtures of the integration tests are
shared here.
"""

from __future__ import annotations

import os

from tests.integration.conftest import (  # noqa: F401  (fixtures, by name)
    alertmanager_factory,
    fake_service,
    prometheus,
    prometheus_factory,
    proxy,
)


def scale() -> str:
    return os.environ.get("CHAOS_SCALE", "small").strip().lower() or "small"


def scaled(small: int, full: int) -> int:
    """How many times to repeat a fault at this run's scale."""
    chosen = scale()
    if chosen == "full":
        return full
    if chosen == "small":
        return small
    try:
        return max(1, round(small * float(chosen)))
    except ValueError:
        raise ValueError(
            f"CHAOS_SCALE={chosen!r}: write small, full or a multiple of the small counts"
        ) from None


def figures(name: str, **numbers: object) -> None:
    """One line of a fault test's figures, printed for `make chaos` to show."""
    shown = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in numbers.items())
    print(f"\n[chaos {name} at scale {scale()}] {shown}")
