"""The read-only dashboard, as HTML: pure functions of the overview view-model.

`page` is the whole document (inline CSS, a small inline script, no external assets);
`fragment` is the part that changes, which the server pushes over server-sent events and
the script swaps in. Every piece of text that a person or a config wrote is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from bot.domain.durations import format_duration
from bot.domain.rollout import pending_words
from bot.render.overview_model import (
    EventView,
    GateView,
    IncidentView,
    Overview,
    RolloutView,
    verb_words,
)

TITLE = "rollout-bot · rollouts"

_GATE_WORDS = {
    "pass": "green",
    "fail": "red",
    "no_data": "no data",
    "source_down": "source down",
}

CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1c2430;--dim:#5b6675;--line:#dde2e8;--bar:#e6eaef;
--go:#1f8f4e;--hold:#b7791f;--back:#c0392b;--done:#2b6cb0;--wait:#8a94a3}
@media (prefers-color-scheme:dark){:root{--bg:#12161c;--card:#1b2129;--ink:#e7ebf0;
--dim:#9aa5b4;--line:#2c3440;--bar:#2c3440}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header{display:flex;align-items:baseline;justify-content:space-between;gap:1rem;
padding-top:1rem}
h1{font-size:1.35rem;margin:.2rem 0}
.live{font-size:.85rem;color:var(--go)}.live.off{color:var(--hold)}
.live::before{content:"● "}
main{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));
padding-top:1rem;padding-bottom:1rem}
.rollout,.notice{background:var(--card);border:1px solid var(--line);border-radius:.6rem;
padding:1rem;border-left:.35rem solid var(--wait);min-width:0}
.notice{grid-column:1/-1;border-left-color:var(--back)}
.notice.quiet{border-left-color:var(--line);color:var(--dim)}
.state-progressing{border-left-color:var(--go)}.state-paused{border-left-color:var(--hold)}
.state-rolled_back{border-left-color:var(--back)}.state-completed{border-left-color:var(--done)}
h2{font-size:1.1rem;margin:0;overflow-wrap:anywhere}
h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--dim);
margin:.9rem 0 .3rem}
.state{display:inline-block;font-size:.8rem;font-weight:600;padding:.05rem .5rem;
border-radius:1rem;background:var(--bar);margin-left:.3rem;vertical-align:middle}
.meta,.small{color:var(--dim);font-size:.85rem;margin:.3rem 0;overflow-wrap:anywhere}
.pct{font-size:1.9rem;font-weight:700;margin:.5rem 0 .2rem}
.pct small{font-size:.9rem;font-weight:400;color:var(--dim)}
.bar{height:.7rem;background:var(--bar);border-radius:.35rem;overflow:hidden}
.bar span{display:block;height:100%;background:var(--go)}
.state-paused .bar span{background:var(--hold)}
.state-rolled_back .bar span{background:var(--back)}
.state-completed .bar span{background:var(--done)}
.stages{display:flex;flex-wrap:wrap;gap:.3rem;list-style:none;padding:0;margin:.5rem 0}
.stages li{font-size:.8rem;padding:.05rem .45rem;border:1px solid var(--line);
border-radius:.3rem;color:var(--dim)}
.stages li.reached{color:var(--ink)}
.stages li.current{background:var(--ink);color:var(--card);border-color:var(--ink)}
.hold{background:color-mix(in srgb,var(--hold) 14%,transparent);border-radius:.3rem;
padding:.4rem .6rem;margin:.5rem 0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.85rem}
td,th{text-align:left;padding:.2rem .3rem;border-bottom:1px solid var(--line)}
.gate-pass{color:var(--go)}.gate-fail{color:var(--back)}
.gate-no_data,.gate-source_down{color:var(--hold)}
.timeline{list-style:none;padding:0;margin:0;font-size:.85rem}
.timeline li{padding:.25rem 0;border-top:1px solid var(--line);overflow-wrap:anywhere}
time{white-space:nowrap}.timeline time{color:var(--dim);margin-right:.3rem}
code{font-size:.85em;overflow-wrap:anywhere}
.asof{grid-column:1/-1;margin:0}
footer{color:var(--dim);font-size:.8rem;padding-bottom:2rem}
@media (max-width:30rem){main{grid-template-columns:1fr}.pct{font-size:1.6rem}
header{flex-wrap:wrap}}
"""

# Live updates: server-sent events from `events`; polling `?fragment=1` where EventSource
# is missing or nothing arrives (a buffering proxy). Without JavaScript, <noscript> refreshes.
SCRIPT = """
(function () {
  var main = document.getElementById("rollouts"), live = document.getElementById("live");
  var last = null, polling = false;
  function show(html, how) {
    if (html !== last) { main.innerHTML = html; last = html; }
    live.textContent = how; live.className = "live";
  }
  function poll() {
    polling = true;
    fetch("?fragment=1", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) throw r.status; return r.text(); })
      .then(function (html) { show(html, "live (polling)"); })
      .catch(function () { live.textContent = "offline"; live.className = "live off"; })
      .then(function () { setTimeout(poll, 5000); });
  }
  if (!window.EventSource) { poll(); return; }
  var heard = false, source = new EventSource("events");
  source.addEventListener("rollouts", function (e) { heard = true; show(e.data, "live"); });
  source.onerror = function () {
    if (!polling) { live.textContent = "reconnecting…"; live.className = "live off"; }
  };
  setTimeout(function () { if (!heard) { source.close(); poll(); } }, 10000);
})();
"""

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
# Inline style attributes carry each bar's width; scripts run only if they hash to SCRIPT.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def page(overview: Overview) -> str:
    """The whole dashboard document."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{escape(TITLE)}</title><style>{CSS}</style>"
        '<noscript><meta http-equiv="refresh" content="30"></noscript></head>\n'
        "<body><header><h1>Rollouts</h1>"
        '<span id="live" class="live off">connecting…</span></header>\n'
        f'<main id="rollouts" aria-live="polite">{fragment(overview)}</main>\n'
        "<footer>Read-only. Act in Slack with <code>/rollout</code> "
        '(<code>/rollout help</code>); scripts read <a href="api/rollouts">/api/rollouts</a>.'
        "</footer>\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def fragment(overview: Overview) -> str:
    """What changes: the incidents notice and one card per rollout."""
    parts = [_freeze_notice(overview), _incidents_notice(overview.incidents, overview.names)]
    if not overview.rollouts:
        parts.append(
            '<section class="notice quiet"><p>No rollouts are configured. Add one under '
            "<code>rollouts:</code> in the config and restart.</p></section>"
        )
    parts.extend(_card(r, overview) for r in overview.rollouts)
    parts.append(f'<p class="small asof">As of {_time(overview.now, overview)}.</p>')
    return "\n".join(p for p in parts if p)


def message_page(title: str, message: str, status_word: str) -> str:
    """A plain page for refusals (403, 401): title and message are escaped."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(status_word)} · {escape(TITLE)}</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>{escape(title)}</h1></header>\n"
        f'<main><section class="notice"><p>{escape(message)}</p></section></main>'
        "</body></html>\n"
    )


def _card(r: RolloutView, overview: Overview) -> str:
    name = escape(r.name)
    lines = [
        f'<article class="rollout state-{escape(r.state)}" id="rollout-{name}" '
        f'data-version="{r.version}">',
        f'<h2>{name} <span class="state">{escape(_state_label(r.state))}</span></h2>',
        f'<p class="meta">flag <code>{escape(r.flag)}</code> · plan {escape(r.plan)} · '
        f"advance {escape(r.advance)}</p>",
        f'<p class="pct">{r.percent} %<small> · {escape(_where(r))}</small></p>',
        f'<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{r.percent}" aria-label="{name} at {r.percent} %">'
        f'<span style="width:{max(0, min(100, r.percent))}%"></span></div>',
        _stages(r),
        f'<p class="small">{escape(r.words)}{_soak(r, overview)}</p>',
    ]
    if r.hold_reason:
        lines.append(f'<p class="hold"><strong>Held:</strong> {escape(r.hold_reason)}</p>')
    if r.held_by:
        lines.append(f'<p class="hold"><strong>Held:</strong> {_held_by(r, overview)}</p>')
    lines.extend(_policy(r, overview))
    lines.append(_gates(r))
    if r.incidents:
        lines.append("<h3>Open incidents</h3>" + _incident_list(r.incidents, overview.names))
    lines.append(_timeline(r.events, overview))
    lines.append("</article>")
    return "\n".join(line for line in lines if line)


def _freeze_notice(overview: Overview) -> str:
    freeze = overview.freeze
    if freeze is None:
        return ""
    return (
        '<section class="notice"><p><strong>Every advance is frozen</strong> since '
        f"{_time(freeze.at, overview)} by {escape(_actor(freeze.by, overview.names))}: "
        f"{escape(freeze.reason)}."
        " A lead lifts it with <code>/rollout unfreeze</code>.</p></section>"
    )


def _policy(r: RolloutView, overview: Overview) -> list[str]:
    """A step waiting for a second person, a waiting auto-advance, a freeze window."""
    lines = []
    if r.pending is not None:
        lines.append(
            '<p class="hold"><strong>Waiting for a second person:</strong> '
            f"{escape(pending_words(r.pending))}, asked by "
            f"{escape(_actor(r.pending.asker, overview.names))};"
            f" expires {_time(r.pending.expires_at, overview)}</p>"
        )
    if r.waiting is not None:
        then = f"; goes on {_time(r.waiting.until, overview)}" if r.waiting.until else ""
        lines.append(
            '<p class="hold"><strong>The automatic advance waits:</strong> '
            f"{escape(r.waiting.reason)}{then}</p>"
        )
    if r.frozen is not None and not r.frozen.emergency:
        until = f" until {_time(r.frozen.until, overview)}" if r.frozen.until else ""
        lines.append(
            f'<p class="hold"><strong>Freeze window{until}:</strong> {escape(r.frozen.reason)}</p>'
        )
    return lines


def _held_by(r: RolloutView, overview: Overview) -> str:
    """error_rate — Prometheus unreachable since 14:02 UTC; … (the config's timezone)."""
    return "; ".join(
        f"{escape(h.gate)} — {escape(h.words)} since "
        f'<time datetime="{h.since.isoformat()}">{_time(h.since, overview)}</time>'
        for h in r.held_by
    )


def _state_label(state: str) -> str:
    return state.replace("_", " ")


def _where(r: RolloutView) -> str:
    if r.stage is None:
        return "not started"
    return f"stage {r.stage} of {len(r.stages)}"


def _soak(r: RolloutView, overview: Overview) -> str:
    ends = r.soak_ends_at
    if r.state != "progressing" or r.soak is None:
        return ""
    if ends is None:
        return f"; soak {format_duration(r.soak)}, counting once every gate is green"
    return (
        f"; soak {format_duration(r.soak)}, until "
        f'<time datetime="{ends.isoformat()}">{_time(ends, overview)}</time>'
    )


def _stages(r: RolloutView) -> str:
    items = []
    for i, percent in enumerate(r.stages, 1):
        cls = "current" if i == r.stage else "reached" if percent <= r.percent else ""
        attr = f' class="{cls}"' if cls else ""
        items.append(f"<li{attr}>{percent} %</li>")
    return f'<ol class="stages" aria-label="plan stages">{"".join(items)}</ol>'


def _gates(r: RolloutView) -> str:
    if r.gates:
        rows = "".join(_gate_row(g) for g in r.gates)
        return (
            "<h3>Gates</h3><table><thead><tr><th>gate</th><th>state</th><th>value</th>"
            f"<th>threshold</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if r.gate_names:
        names = ", ".join(escape(n) for n in r.gate_names)
        return f'<h3>Gates</h3><p class="small">{names}: no measurement yet.</p>'
    return ""


def _gate_row(g: GateView) -> str:
    outcome = escape(g.outcome)
    words = escape(_GATE_WORDS.get(g.outcome, g.outcome))
    return (
        f'<tr><td>{escape(g.name)}</td><td class="gate-{outcome}">{words}</td>'
        f"<td>{_number(g.value)}</td><td>{_number(g.threshold)}</td></tr>"
    )


def _number(value: float | None) -> str:
    return "–" if value is None else escape(f"{value:.4g}")


def _incidents_notice(incidents: tuple[IncidentView, ...], names: Mapping[str, str]) -> str:
    if not incidents:
        return ""
    return (
        f'<section class="notice"><h3>Open incidents ({len(incidents)})</h3>'
        f"{_incident_list(incidents, names)}</section>"
    )


def _incident_list(incidents: tuple[IncidentView, ...], names: Mapping[str, str]) -> str:
    items = []
    for i in incidents:
        holder = f"held by {_actor(i.holder, names)}" if i.holder else "not acknowledged yet"
        items.append(
            f"<li><code>{escape(i.id)}</code> {escape(i.summary)} "
            f'<span class="small">({escape(holder)})</span></li>'
        )
    return f'<ul class="timeline">{"".join(items)}</ul>'


def _timeline(events: tuple[EventView, ...], overview: Overview) -> str:
    if not events:
        return '<h3>Recent events</h3><p class="small">Nothing has happened yet.</p>'
    items = []
    for e in events:
        if e.from_percent != e.to_percent:
            movement = f"{e.from_percent} % → {e.to_percent} %"
        else:
            movement = f"at {e.to_percent} %"
        text = f"{_actor(e.actor, overview.names)} {verb_words(e.verb)} {movement} ({e.source})"
        reason = ""
        if e.reason:
            label = "forced: " if e.forced else ""
            reason = f" — {escape(label + e.reason)}"
        items.append(
            f'<li><time datetime="{e.at.isoformat()}">{_time(e.at, overview)}</time>'
            f" {escape(text)}{reason}</li>"
        )
    return f'<h3>Recent events</h3><ol class="timeline">{"".join(items)}</ol>'


def _actor(actor: str, names: Mapping[str, str]) -> str:
    """A person by name (`users.info`), by ID while Slack has not said; the bot as itself."""
    if actor[:1] not in ("U", "W"):
        return actor
    return f"@{names.get(actor) or actor}"


def _time(moment: datetime, overview: Overview) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(ZoneInfo(overview.timezone))
    day = "" if local.date() == overview.now.astimezone(local.tzinfo).date() else "%Y-%m-%d "
    return escape(local.strftime(f"{day}%H:%M {_zone(local)}"))


def _zone(local: datetime) -> str:
    offset = local.utcoffset() or timedelta(0)
    return local.tzname() or f"UTC{offset}"
