"""Sealed values: what the bot hands Slack to carry back (a button's `value`, a modal's
`private_metadata`) carries an HMAC of itself, so only values the bot drew act.

A value is a JSON object; sealed, it ends with one more member, `"s"`, the first 128 bits
of an HMAC-SHA256 of the value as it was before sealing, in hex:
`{"r":"phase-4","v":3}` becomes `{"r":"phase-4","v":3,"s":"9f…"}`. The key is derived from
a secret the bot is configured with (`ButtonSeal.from_secret`); a value sealed with another
key, unsealed (drawn before values were sealed) or altered in any byte does not open.

Pure: no I/O. The bot's Slack client seals every message and view on its way out
(`bot.sealed_client`); the listeners open what comes back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

PURPOSE = b"rollout-bot sealed values v1"
SIGNATURE_HEX = 32
_SEALED = re.compile(r'(\{.*),"s":"([0-9a-f]{' + str(SIGNATURE_HEX) + r'})"\}', re.DOTALL)


@dataclass(frozen=True)
class ButtonSeal:
    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> ButtonSeal:
        """The key for sealing, derived from (never equal to) a configured secret."""
        if not secret:
            raise ValueError("a seal needs a secret")
        return cls(hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest())

    def _signature(self, raw: str) -> str:
        digest = hmac.new(self.key, raw.encode(), hashlib.sha256).hexdigest()
        return digest[:SIGNATURE_HEX]

    def seal(self, raw: str) -> str:
        """`raw` (a JSON object's text) with its signature as a last member."""
        if not (raw.startswith("{") and raw.endswith("}")) or raw == "{}":
            raise ValueError(f"only a non-empty JSON object is sealed: {raw[:80]!r}")
        return f'{raw[:-1]},"s":"{self._signature(raw)}"}}'

    def open(self, sealed: str) -> str | None:
        """The value as it was drawn, or None when this bot did not seal it (unsealed,
        another key, or altered)."""
        match = _SEALED.fullmatch(sealed)
        if match is None:
            return None
        raw = match.group(1) + "}"
        if not hmac.compare_digest(self._signature(raw), match.group(2)):
            return None
        return raw

    def is_sealed(self, value: str) -> bool:
        return self.open(value) is not None

    def seal_surface(self, surface: Any) -> Any:
        """A copy of a message's blocks or a view with every button value and every
        `private_metadata` that is a JSON object sealed (values already sealed stay so)."""
        if isinstance(surface, list):
            return [self.seal_surface(item) for item in surface]
        if not isinstance(surface, dict):
            return surface
        sealed = {key: self.seal_surface(item) for key, item in surface.items()}
        if surface.get("type") == "button" and isinstance(surface.get("value"), str):
            sealed["value"] = self._seal_once(surface["value"])
        if isinstance(surface.get("private_metadata"), str):
            sealed["private_metadata"] = self._seal_once(surface["private_metadata"])
        return sealed

    def _seal_once(self, value: str) -> str:
        if not (value.startswith("{") and value.endswith("}")) or value == "{}":
            return value
        return value if self.is_sealed(value) else self.seal(value)
