"""Action ids of the buttons on a rollout's thread message, and the value they carry."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ADVANCE = "rollout_advance_next"
PAUSE = "rollout_pause"
RESUME = "rollout_resume"
ROLLBACK = "rollout_rollback"
CONFIRM = "rollout_confirm"  # the two-person rule: a second person confirms a step
CANCEL = "rollout_cancel"
ALL = (ADVANCE, PAUSE, RESUME, ROLLBACK)
OPEN_THREAD = "rollout_open_thread"  # a link button in the App Home: Slack opens the thread
REQUEST_ALL = (CONFIRM, CANCEL)


ROLLOUT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")  # as the config allows them
MAX_NUMBER = 2**53  # versions, requests and incidents: far below what a database column holds


def _object(raw: str, keys: set[str], what: str) -> dict[str, Any]:
    """The JSON object a button of ours carries: exactly `keys`, nothing more or less."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not {what}: {raw[:80]!r}") from exc
    if not isinstance(data, dict) or set(data) != keys:
        raise ValueError(f"not {what}: {raw[:80]!r}")
    return data


def _rollout(data: dict[str, Any], raw: str, what: str) -> str:
    name = data["r"]
    if not isinstance(name, str) or not ROLLOUT_NAME.fullmatch(name):
        raise ValueError(f"not {what}: {raw[:80]!r}")
    return name


def _number(value: Any, raw: str, what: str, *, least: int = 0) -> int:
    if type(value) is not int or not least <= value < MAX_NUMBER:
        raise ValueError(f"not {what}: {raw[:80]!r}")
    return value


@dataclass(frozen=True)
class ButtonValue:
    """Which rollout a button acts on, and the version it was drawn at."""

    rollout: str
    version: int

    def encode(self) -> str:
        return json.dumps({"r": self.rollout, "v": self.version}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> ButtonValue:
        """Raises ValueError on anything that a button of ours could not have sent."""
        what = "a rollout button value"
        data = _object(raw, {"r", "v"}, what)
        return cls(_rollout(data, raw, what), _number(data["v"], raw, what))


@dataclass(frozen=True)
class RequestValue:
    """Which pending step a Confirm or Cancel button answers: the rollout and the request."""

    rollout: str
    request: int

    def encode(self) -> str:
        return json.dumps({"r": self.rollout, "q": self.request}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> RequestValue:
        """Raises ValueError on anything that a button of ours could not have sent."""
        what = "a request button value"
        data = _object(raw, {"r", "q"}, what)
        return cls(_rollout(data, raw, what), _number(data["q"], raw, what, least=1))


# --- incident buttons: on the incident's thread message, its pages and reminders ----------

INCIDENT_ACK = "incident_ack"
INCIDENT_RESOLVE = "incident_resolve"
INCIDENT_SILENCE = "incident_silence"
INCIDENT_UNSILENCE = "incident_unsilence"
INCIDENT_ALL = (INCIDENT_ACK, INCIDENT_RESOLVE, INCIDENT_SILENCE, INCIDENT_UNSILENCE)


@dataclass(frozen=True)
class IncidentButtonValue:
    """Which incident a button acts on."""

    incident: int

    def encode(self) -> str:
        return json.dumps({"i": self.incident}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> IncidentButtonValue:
        """Raises ValueError on anything that a button of ours could not have sent."""
        what = "an incident button value"
        data = _object(raw, {"i"}, what)
        return cls(_number(data["i"], raw, what, least=1))
