"""The domain reads no clock: `now` is always passed in."""

from __future__ import annotations

import re
from pathlib import Path

DOMAIN = Path(__file__).parents[2] / "bot" / "domain"
CLOCK_READS = re.compile(r"\b(datetime\.now|datetime\.utcnow|date\.today|time\.time|monotonic)\(")


def test_the_domain_reads_no_clock() -> None:
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(DOMAIN.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CLOCK_READS.search(line)
    ]
    assert offenders == []


def test_the_check_can_see_a_clock_read() -> None:
    assert CLOCK_READS.search("    now = datetime.now(UTC)")
