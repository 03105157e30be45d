"""Who may do what. With no roles configured, everyone may (the bot says so at start)."""

from __future__ import annotations

from collections.abc import Sequence

LEAD_VERBS = frozenset({"start", "advance", "resume"})
OPERATOR_VERBS = frozenset({"pause", "rollback", "ack"})
FORCE = "force"  # advancing before the soak ends, past stages or red gates: leads only


def allowed_users(verb: str, leads: Sequence[str], operators: Sequence[str]) -> list[str] | None:
    """The users who may run `verb`, or None when anyone may.

    Leads may also pause and roll back: whoever may push a rollout forward may stop it.
    """
    if not leads and not operators:
        return None
    if verb in LEAD_VERBS or verb == FORCE:
        return list(leads)
    if verb in OPERATOR_VERBS:
        return list(dict.fromkeys([*operators, *leads]))
    return None  # status, history, help


def refusal(verb: str, users: Sequence[str]) -> str:
    who = ", ".join(f"<@{u}>" for u in users) or "nobody (no one holds that role in the config)"
    action = f"{verb} a rollout"
    if verb == FORCE:
        action = "force an advance (before the soak ends, past stages or red gates)"
    return f"You may not {action}. Who may: {who}. Ask one of them, or a config change."
