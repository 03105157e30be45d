"""A Block Kit message as plain text for a terminal: what a channel or a DM would show.

Pure. mrkdwn becomes readable text: `*bold*` plain (or ANSI bold), `<@U0CORA>` `@U0CORA`
(or `@cora` given a name mapping), `<!date^…|fallback>` its fallback, `<url|label>`
`label (url)`; buttons read `[Advance to next] [Pause]`. Blocks of unknown types are skipped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

BOLD, RESET = "\x1b[1m", "\x1b[0m"
DIVIDER = "─" * 40

_LINK = re.compile(r"<([^<>]+)>")
_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def render(
    message: Mapping[str, Any],
    *,
    names: Mapping[str, str] | None = None,
    ansi: bool = False,
) -> str:
    """The message's blocks as text, or its `text` when it has no blocks."""
    blocks = message.get("blocks") or []
    if not blocks:
        return mrkdwn(str(message.get("text", "")), names=names, ansi=ansi)
    parts = [_block(b, names or {}, ansi) for b in blocks]
    return "\n".join(p for p in parts if p is not None)


def mrkdwn(text: str, *, names: Mapping[str, str] | None = None, ansi: bool = False) -> str:
    """Slack mrkdwn as plain text."""
    names = names or {}
    # Code spans keep their text verbatim (no bold or links inside); set them aside first.
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(match[2])
        return f"\x00{len(spans) - 1}\x00"

    text = _CODE.sub(keep, text)
    text = _LINK.sub(lambda m: _link(m[1], names), text)
    text = _BOLD.sub(lambda m: f"{BOLD}{m[1]}{RESET}" if ansi else m[1], text)
    text = _ITALIC.sub(lambda m: m[1], text)
    text = _STRIKE.sub(lambda m: m[1], text)
    text = re.sub("\x00(\\d+)\x00", lambda m: spans[int(m[1])], text)
    return html.unescape(text)


def _link(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "@" + (label or names.get(user, user))
    if target.startswith("#"):
        return "#" + (label or names.get(target[1:], target[1:]))
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!subteam^"):
        group = target.split("^", 1)[1]
        return label or "@" + names.get(group, group)
    if target.startswith("!"):
        return label or _SPECIAL.get(target[1:], "@" + target[1:])
    if label and label != target:
        return f"{label} ({target.removeprefix('mailto:')})"
    return target.removeprefix("mailto:")


def _text(obj: Any, names: Mapping[str, str], ansi: bool) -> str:
    """A text object (plain_text or mrkdwn) as terminal text."""
    if not isinstance(obj, Mapping):
        return ""
    value = str(obj.get("text", ""))
    if obj.get("type") == "mrkdwn":
        return mrkdwn(value, names=names, ansi=ansi)
    return value


def _block(block: Mapping[str, Any], names: Mapping[str, str], ansi: bool) -> str | None:
    kind = block.get("type")
    if kind == "section":
        lines = []
        if block.get("text"):
            lines.append(_text(block["text"], names, ansi))
        fields = [_text(f, names, ansi) for f in block.get("fields") or []]
        lines.extend(fields)
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            element = _element(accessory, names, ansi)
            if element:
                lines.append(element)
        return "\n".join(lines)
    if kind == "header":
        title = _text(block.get("text"), names, ansi)
        return f"{BOLD}{title}{RESET}" if ansi else f"{title}\n{'═' * min(len(title), 40)}"
    if kind == "context":
        items = [_element(e, names, ansi) for e in block.get("elements") or []]
        return "  ".join(i for i in items if i)
    if kind == "actions":
        return _buttons(block.get("elements") or [], names, ansi)
    if kind == "divider":
        return DIVIDER
    if kind == "image":
        alt = str(block.get("alt_text", "image"))
        title = _text(block.get("title"), names, ansi)
        url = block.get("image_url") or (block.get("slack_file") or {}).get("url", "")
        label = f"{title}: {alt}" if title and title != alt else alt
        return f"[image: {label}]" + (f" ({url})" if url else "")
    if kind == "rich_text":
        return None  # the message's text carries the same words
    return None


def _buttons(elements: Sequence[Any], names: Mapping[str, str], ansi: bool) -> str:
    return " ".join(e for e in (_element(x, names, ansi) for x in elements) if e)


def _element(element: Any, names: Mapping[str, str], ansi: bool) -> str:
    if not isinstance(element, Mapping):
        return ""
    kind = element.get("type")
    if kind in ("mrkdwn", "plain_text"):
        return _text(element, names, ansi)
    if kind == "button":
        label = _text(element.get("text"), names, ansi)
        url = element.get("url")
        return f"[{label}]" + (f" ({url})" if url else "")
    if kind == "image":
        return f"[{element.get('alt_text', 'image')}]"
    if kind in ("static_select", "users_select", "conversations_select", "overflow"):
        placeholder = _text(element.get("placeholder"), names, ansi) or "…"
        return f"[{placeholder} ▾]"
    return ""
