"""JSON from outside (Alertmanager, Slack), decoded so that a body which can never be
taken fails as the sender's mistake, never as ours.

The standard decoder raises RecursionError on deep nesting (`[` ten thousand times), which
is no ValueError: a handler that catches only ValueError would answer 5xx, and a sender
that retries 5xx (Alertmanager) would send the same body for ever. Here every such body is
a `NotJson` (a ValueError), with a reason fit for a 400 reply:

- nesting deeper than `max_depth` (also below Python's own recursion limit);
- numbers no float can hold (`1e999999` would be infinity) and `NaN`/`Infinity`;
- integers longer than Python converts (its int string limit, 4300 digits);
- bytes that are not UTF-8; anything that is not JSON.

Sizes are bounded before this, by each endpoint's body limit.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32  # Alertmanager and Slack nest a handful of levels; 32 leaves room


class NotJson(ValueError):
    """A body that is not JSON we can take: the reason, for the sender."""


def decode(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJson(f"not UTF-8 text: {exc}") from None
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise NotJson(f"nested deeper than {max_depth} levels") from None
    except NotJson:
        raise
    except ValueError as exc:  # JSONDecodeError, and the int string limit
        raise NotJson(f"not JSON: {str(exc)[:200]}") from None
    if depth(data, max_depth) > max_depth:
        raise NotJson(f"nested deeper than {max_depth} levels")
    return data


def depth(data: Any, stop_after: int) -> int:
    """How deep lists and objects nest in `data` (a scalar is 0), counted without
    recursion; stops counting once past `stop_after`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > stop_after:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotJson(f"the number {text[:20]}{'…' if len(text) > 20 else ''} is out of range")
    return number


def _no_constant(name: str) -> float:
    raise NotJson(f"{name} is not a JSON number")
