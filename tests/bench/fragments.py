"""Each benchmark writes its figures as a Markdown fragment; `report` joins one run's
fragments into docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path

FRAGMENTS = Path(__file__).parents[2] / "test-artifacts" / "bench"

# The order of the sections in docs/PERFORMANCE.md, with the title of each.
SECTIONS = {
    "P1": "P1: commands against the bare signed endpoint",
    "P1b": "P1b: commands while an alert storm and a large tick run",
    "P2": "P2: breach to rollback, and decision to /flags",
    "P3": "P3: the gate tick at 100, 1,000 and 10,000 rollouts",
    "P4": "P4: an /alertmanager burst",
    "replicas": "One replica and three",
}


def write_fragment(key: str, markdown: str) -> Path:
    """Record one section's figures (Markdown, without its heading) for this run."""
    if key not in SECTIONS:
        raise ValueError(f"unknown section {key!r}: one of {', '.join(SECTIONS)}")
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    path = FRAGMENTS / f"{key}.md"
    path.write_text(markdown.strip() + "\n")
    return path
