"""A shadow run's messages say so: their text starts with "[shadow]" and their first block
says what stays as it was. Pure: a message in, the marked message out."""

from __future__ import annotations

from typing import Any

from bot.domain.rollout import RolloutStatus
from bot.render.blocks import context

MARK = "[shadow]"


def shadow_note(status: RolloutStatus) -> str:
    return (
        f"🕶 *Shadow run*: nothing here is applied. The service is still told "
        f"{status.delivered} %, and nobody is paged."
    )


def marked(message: dict[str, Any], status: RolloutStatus) -> dict[str, Any]:
    """`message` marked as a shadow run's, when `status` is one; else as it is."""
    if status.shadow is None:
        return message
    out = dict(message)
    out["text"] = f"{MARK} {message.get('text', '')}"
    if message.get("blocks"):
        out["blocks"] = [context(shadow_note(status)), *message["blocks"]]
    return out
