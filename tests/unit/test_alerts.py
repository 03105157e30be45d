"""Alert verdicts, the webhook payload model, and incident rendering, as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.domain.alerts import AlertFact, HoldPolicy, hold_reason, match_rollout, notification_key
from bot.domain.escalation import ChainSnapshot, IncidentState, Level, TargetKind
from bot.domain.plans import BUILTIN_PLANS
from bot.domain.rollout import RolloutSpec, RolloutStatus, State
from bot.inbound.alertmanager_endpoint import EndpointAuth, parse_payload
from bot.render import buttons as actions
from bot.render import incident_blocks as render
from tests.support.incidents import alert, webhook

SPECS = {
    "phase-4": RolloutSpec("phase-4", "phase_4_deployment", BUILTIN_PLANS["safe"]),
    "search-v2": RolloutSpec("search-v2", "search_v2", BUILTIN_PLANS["fast"]),
}
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def fact(fp: str, status: str = "firing", **labels: str) -> AlertFact:
    return AlertFact(fp, status, labels)


def test_notification_identity_ignores_order_but_not_status() -> None:
    a, b = fact("a"), fact("b")
    assert notification_key("g", "firing", [a, b]) == notification_key("g", "firing", [b, a])
    assert notification_key("g", "firing", [a]) != notification_key("g", "resolved", [a])
    assert notification_key("g", "firing", [a]) != notification_key(
        "g", "firing", [fact("a", "resolved")]
    )
    assert notification_key("g", "firing", [a]) != notification_key("h", "firing", [a])


def test_alerts_match_a_rollout_by_name_or_flag_else_none() -> None:
    assert match_rollout({"rollout": "phase-4"}, [], SPECS) == "phase-4"
    assert match_rollout({}, [fact("x", flag="search_v2")], SPECS) == "search-v2"
    assert match_rollout({"rollout": "unknown"}, [fact("x")], SPECS) is None


def test_a_critical_alert_holds_only_a_progressing_canary() -> None:
    crit = [fact("x", alertname="Errors", severity="critical")]
    warn = [fact("x", alertname="Errors", severity="warning")]
    at = lambda p, s=State.PROGRESSING: RolloutStatus(state=s, percent=p)  # noqa: E731
    policy = HoldPolicy()
    assert hold_reason(crit, at(5), policy) == "critical alert firing at 5 %: Errors"
    assert hold_reason(crit, at(10), policy) is not None
    assert hold_reason(crit, at(25), policy) is None
    assert hold_reason(warn, at(5), policy) is None
    assert hold_reason(crit, at(5, State.PAUSED), policy) is None
    assert hold_reason(crit, at(5), HoldPolicy(enabled=False)) is None
    assert hold_reason([fact("x", "resolved", severity="critical")], at(5), policy) is None


def test_the_payload_model_takes_version_4_and_ignores_new_fields() -> None:
    body = webhook("g", [alert("A", "f1")], notification_reason="new", routeLabels={"a": "b"})
    payload, problem = parse_payload(json.dumps(body).encode())
    assert problem is None and payload is not None
    assert payload.alerts[0].endsAt.year == 1  # 0001-01-01T00:00:00Z while firing
    for raw, words in [
        (b"nope", "not JSON"),
        (b'"x"', "JSON object"),
        (json.dumps({**body, "version": "5"}).encode(), "version"),
        (json.dumps({**body, "receiver": None}).encode(), "receiver"),
    ]:
        payload, problem = parse_payload(raw)
        assert payload is None and problem is not None and words in problem, (raw, problem)


def test_endpoint_auth() -> None:
    assert EndpointAuth().allows("")
    token = EndpointAuth(bearer_token="t" * 20)
    assert token.allows("Bearer " + "t" * 20) and token.allows("bearer " + "t" * 20)
    assert not token.allows("Bearer x") and not token.allows("")
    basic = EndpointAuth(basic=("am", "pw"))
    assert basic.allows("Basic YW06cHc=") and not basic.allows("Basic !!!")


VIEW = render.IncidentView(
    id=7,
    kind="automatic_rollback",
    summary="error_rate 2.1 % above 0.5 %",
    state=IncidentState.OPEN,
    opened_at=T0,
    rollout="phase-4",
    alerts={"f1": {"status": "firing", "name": "Errors", "summary": "5xx"}},
)
CHAIN = ChainSnapshot(
    (
        Level(TargetKind.USER, "U0FORGE", timedelta(minutes=5)),
        Level(TargetKind.GROUP, "S0LEADS", timedelta(minutes=10)),
    ),
    repeat=1,
)


def _buttons(message: dict[str, object]) -> list[str]:
    blocks = message["blocks"]
    assert isinstance(blocks, list)
    found = [b for b in blocks if b["type"] == "actions"]
    return [e["action_id"] for e in found[0]["elements"]] if found else []


def test_the_incident_message_follows_the_state() -> None:
    opened = render.incident_message(VIEW)
    assert _buttons(opened) == [
        actions.INCIDENT_ACK, actions.INCIDENT_RESOLVE, actions.INCIDENT_SILENCE
    ]
    assert "Incident #7 · *phase-4* · automatic rollback" in opened["blocks"][0]["text"]["text"]
    assert "1 firing, 0 resolved" in opened["blocks"][0]["text"]["text"]
    acked = render.incident_message(
        VIEW.__class__(**{**VIEW.__dict__, "state": IncidentState.ACKNOWLEDGED,
                          "acked_by": "U0FORGE", "acked_at": T0})
    )  # fmt: skip
    assert _buttons(acked) == [actions.INCIDENT_RESOLVE]
    silenced = render.incident_message(
        VIEW.__class__(**{**VIEW.__dict__, "state": IncidentState.SILENCED,
                          "silenced_until": T0 + timedelta(hours=2)})
    )  # fmt: skip
    assert _buttons(silenced) == [
        actions.INCIDENT_ACK, actions.INCIDENT_RESOLVE, actions.INCIDENT_UNSILENCE
    ]
    assert "Acknowledged by <@U0FORGE> <!date^" in acked["blocks"][1]["elements"][0]["text"]
    resolved = render.incident_message(
        VIEW.__class__(**{**VIEW.__dict__, "state": IncidentState.RESOLVED,
                          "resolved_by": "alertmanager", "resolved_at": T0})
    )  # fmt: skip
    assert _buttons(resolved) == []
    assert "Resolved by Alertmanager" in resolved["blocks"][1]["elements"][0]["text"]


def test_pages_say_the_level_and_what_happens_next() -> None:
    dm = render.page_dm(VIEW, 0, 0, CHAIN)
    text = dm["blocks"][0]["text"]["text"]
    assert "Level 1 of 2, round 1 of 2" in text and "within 5m, the next level" in text
    last = render.page_mention(VIEW, CHAIN.levels[1], 1, 1, CHAIN)["text"]
    assert last.startswith("<!subteam^S0LEADS> you are paged for incident #7")
    assert "the whole channel is told" in last
    nobody = render.nobody_answered(VIEW, CHAIN)["text"]
    assert nobody.startswith("<!channel> Nobody acknowledged incident #7")
    assert actions.IncidentButtonValue.decode('{"i":7}').incident == 7
