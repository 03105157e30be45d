"""The bot's own metrics, on a registry per bot so several bots can run in one process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Awaited by `/metrics` before it renders the registry: collectors that read the
        # database (the rollouts' own series) take their reading here.
        self.before_scrape: list[Callable[[], Awaitable[None]]] = []
        self.commands = Counter(
            "rollout_bot_commands",
            "Commands handled, by verb and outcome",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "rollout_bot_outbox_depth",
            "Slack messages waiting to be delivered",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "rollout_bot_outbox_delivered", "Slack messages delivered", registry=self.registry
        )
        self.outbox_lookups = Counter(
            "rollout_bot_outbox_lookups",
            "Reads of a conversation for a message an earlier attempt may have posted, by "
            "whether it was there",
            ["result"],
            registry=self.registry,
        )
        self.delivery_failures = Counter(
            "rollout_bot_outbox_delivery_failures",
            "Slack delivery attempts that failed, by error",
            ["error"],
            registry=self.registry,
        )
