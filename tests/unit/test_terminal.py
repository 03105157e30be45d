"""Block Kit messages read as plain text in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.config import parse_config
from bot.demo.terminal import BOLD, DIVIDER, RESET, mrkdwn, render
from bot.domain.rollout import RolloutStatus, State
from bot.render import blocks

SPEC = parse_config(
    "rollouts:\n  - {name: phase-4, flag: phase_4_deployment, plan: safe}\n"
).specs()["phase-4"]
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_a_thread_parent_reads_as_lines_and_buttons() -> None:
    status = RolloutStatus(State.PROGRESSING, 25, 2, NOW, "", 3)
    assert render(blocks.parent_message(SPEC, status)) == (
        "🟢 phase-4 · flag phase_4_deployment · progressing at 25 %\n"
        "▰▰▱▱▱▱▱▱▱▱ 25 % · stage 3 of 6\n"
        "Plan safe: 5 → 10 → 25 → 50 → 75 → 100 %\n"
        "[Advance to next] [Pause] [Roll back]"
    )


def test_bold_can_be_ansi() -> None:
    assert mrkdwn("*phase-4* at *25 %*", ansi=True) == f"{BOLD}phase-4{RESET} at {BOLD}25 %{RESET}"
    assert mrkdwn("*phase-4* at *25 %*") == "phase-4 at 25 %"


def test_mentions_dates_and_links() -> None:
    text = (
        "<@U0CORA> advanced it <!date^1793610000^{date_short_pretty} {time}|2026-11-02 09:00 UTC>"
        " — see <https://grafana.example/d/1|the dashboard> or <https://example.com>"
    )
    assert mrkdwn(text) == (
        "@U0CORA advanced it 2026-11-02 09:00 UTC — see the dashboard "
        "(https://grafana.example/d/1) or https://example.com"
    )
    assert mrkdwn("<@U0CORA> and <@U0FORGE>", names={"U0CORA": "cora"}) == "@cora and @U0FORGE"
    assert mrkdwn("<!here> <#C0DEPLOY|deployments> <!subteam^S0ONCALL|@oncall>") == (
        "@here #deployments @oncall"
    )


def test_code_keeps_its_characters_and_entities_are_unescaped() -> None:
    assert mrkdwn("type `/rollout advance *next*` &lt;now&gt; &amp; wait") == (
        "type /rollout advance *next* <now> & wait"
    )
    assert mrkdwn("snake_case_name stays, 2*3*4 too, _italic_ ~gone~") == (
        "snake_case_name stays, 2*3*4 too, italic gone"
    )


def test_every_block_kind() -> None:
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Daily summary"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Rollout*\nphase-4"},
                    {"type": "plain_text", "text": "25 %"},
                ],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    {"type": "image", "image_url": "https://x/y.png", "alt_text": "chart"},
                    {"type": "mrkdwn", "text": "by <@U0CORA>"},
                ],
            },
            {"type": "image", "image_url": "https://x/c.png", "alt_text": "percent over a week"},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}},
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Runbook"},
                        "url": "https://wiki/runbook",
                    },
                ],
            },
            {"type": "video"},
        ],
    }
    assert render(message) == "\n".join(
        [
            "Daily summary",
            "═" * len("Daily summary"),
            "Rollout\nphase-4",
            "25 %",
            DIVIDER,
            "[chart]  by @U0CORA",
            "[image: percent over a week] (https://x/c.png)",
            "[Acknowledge] [Runbook] (https://wiki/runbook)",
        ]
    )


def test_a_message_without_blocks_is_its_text() -> None:
    assert render({"text": "*Done*: <@U0CORA> paused phase-4"}) == "Done: @U0CORA paused phase-4"
