"""Slack failing at random, as it does on a bad day: for the Web API stand-in.

`SlackFaults` is opt-in (`SlackStandIn.inject_faults`). On the methods it names, each call
in turn may be
- answered with a 5xx (500, 502 or 503) without being carried out;
- answered HTTP 429 `{"ok": false, "error": "ratelimited"}` with a `Retry-After` header,
  in bursts: a burst refuses the next `burst_length` calls to that method;
- carried out, and then its answer lost: the connection drops after Slack posted, so the
  message is in the channel but the caller never hears back.

The draws come from a seeded generator, so a run can be repeated; the counts of each are
kept for a test to print.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

DEFAULT_METHODS = frozenset({"chat.postMessage", "chat.update"})
SERVER_ERRORS = (500, 502, 503)


class Outcome(Enum):
    ANSWER = "answer"  # carried out and answered
    SERVER_ERROR = "5xx"  # not carried out, a 5xx
    RATE_LIMITED = "429"  # not carried out, a 429 with Retry-After
    LOSE_ANSWER = "lost"  # carried out, the connection dropped before the answer


@dataclass
class SlackFaults:
    server_error_rate: float = 0.2
    burst_rate: float = 0.02  # the chance that a call starts a burst of 429s
    burst_length: int = 3
    retry_after: int = 1
    lost_answer_rate: float = 0.05
    methods: frozenset[str] = DEFAULT_METHODS
    seed: int = 0
    # What was done, for the figures.
    calls: int = 0
    answered_5xx: int = 0
    bursts: int = 0
    answered_429: int = 0
    answers_lost: int = 0
    _burst_left: dict[str, int] = field(default_factory=dict)
    _burst_now: set[str] = field(default_factory=set)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def start_burst(self, method: str) -> None:
        """Make the next call to `method` start a burst of 429s, whatever the draw."""
        self._burst_now.add(method)

    def draw(self, method: str) -> Outcome:
        """What happens to this call to `method`."""
        if method not in self.methods:
            return Outcome.ANSWER
        self.calls += 1
        left = self._burst_left.get(method, 0)
        forced = method in self._burst_now
        self._burst_now.discard(method)
        if left == 0 and (self._random.random() < self.burst_rate or forced):
            self.bursts += 1
            left = self.burst_length
        if left > 0:
            self._burst_left[method] = left - 1
            self.answered_429 += 1
            return Outcome.RATE_LIMITED
        if self._random.random() < self.server_error_rate:
            self.answered_5xx += 1
            return Outcome.SERVER_ERROR
        if self._random.random() < self.lost_answer_rate:
            return Outcome.LOSE_ANSWER
        return Outcome.ANSWER

    def server_error(self) -> int:
        return self._random.choice(SERVER_ERRORS)

    def counts(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "answered_5xx": self.answered_5xx,
            "bursts_429": self.bursts,
            "answered_429": self.answered_429,
            "answers_lost": self.answers_lost,
        }
