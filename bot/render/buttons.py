"""Action ids of the buttons on a rollout's thread message, and the value they carry."""

from __future__ import annotations

import json
from dataclasses import dataclass

ADVANCE = "rollout_advance_next"
PAUSE = "rollout_pause"
RESUME = "rollout_resume"
ROLLBACK = "rollout_rollback"
CONFIRM = "rollout_confirm"  # the two-person rule: a second person confirms a step
CANCEL = "rollout_cancel"
ALL = (ADVANCE, PAUSE, RESUME, ROLLBACK)
OPEN_THREAD = "rollout_open_thread"  # a link button in the App Home: Slack opens the thread
REQUEST_ALL = (CONFIRM, CANCEL)


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
        try:
            data = json.loads(raw)
            rollout, version = data["r"], data["v"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a rollout button value: {raw[:80]!r}") from exc
        if not isinstance(rollout, str) or not isinstance(version, int):
            raise ValueError(f"not a rollout button value: {raw[:80]!r}")
        return cls(rollout, version)


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
        try:
            data = json.loads(raw)
            rollout, request = data["r"], data["q"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a request button value: {raw[:80]!r}") from exc
        if not isinstance(rollout, str) or type(request) is not int or set(data) != {"r", "q"}:
            raise ValueError(f"not a request button value: {raw[:80]!r}")
        return cls(rollout, request)


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
        try:
            incident = json.loads(raw)["i"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not an incident button value: {raw[:80]!r}") from exc
        if not isinstance(incident, int) or isinstance(incident, bool):
            raise ValueError(f"not an incident button value: {raw[:80]!r}")
        return cls(incident)
