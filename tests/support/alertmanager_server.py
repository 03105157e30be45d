"""A real Alertmanager (the Debian ``prometheus-alertmanager`` binary) for integration tests.

Its single receiver is a webhook to ``<webhook_base_url>/alertmanager`` (``send_resolved``),
routed with ``group_by: [alertname, rollout]``, ``group_wait: 1s``, ``group_interval: 2s``,
``repeat_interval: 1h``. Clustering is off (``--cluster.listen-address=``), so it needs no
network and is ready in ~0.1 s.

    am = AlertmanagerServer("http://127.0.0.1:8080", bearer_token="s3cret")
    await am.start()
    await am.post_alerts([{"labels": {"alertname": "HighErrorRate", "rollout": "r1"}}])
    # ~1 s later (group_wait): a "firing" webhook
    await am.resolve({"alertname": "HighErrorRate", "rollout": "r1"})
    # within group_interval (2 s): a "resolved" webhook
    am.close()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import yaml

from .prometheus_server import BinaryServer, find_binary

ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"


def rfc3339(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What the `alertmanager_factory` fixture gives: `await factory(webhook_base_url, **kwargs)`.
AlertmanagerFactory = Callable[..., Awaitable["AlertmanagerServer"]]


class AlertmanagerError(RuntimeError):
    pass


class AlertmanagerServer(BinaryServer):
    """``prometheus-alertmanager`` with one webhook receiver pointing at the bot."""

    name = "alertmanager"

    def __init__(
        self,
        webhook_base_url: str,
        *,
        webhook_path: str = "/alertmanager",
        bearer_token: str | None = None,
        group_by: Sequence[str] = ("alertname", "rollout"),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        super().__init__(
            binary
            or find_binary(ALERTMANAGER_BINARY, "ALERTMANAGER_BIN", "prometheus-alertmanager"),
            start_timeout=start_timeout,
        )
        self.webhook_url = webhook_base_url.rstrip("/") + webhook_path
        self.extra_args = list(extra_args)
        self.storage_path = self.workdir / "data"
        self.config_path = self.workdir / "alertmanager.yml"
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True}
        if bearer_token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": bearer_token}
            }
        config = {
            "route": {
                "receiver": "rollout-bot",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{"name": "rollout-bot", "webhook_configs": [webhook]}],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *self.extra_args,
        ]

    # -- HTTP API ------------------------------------------------------------------------------

    async def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each alert ``{labels, annotations?, startsAt?, endsAt?}``.

        Without ``endsAt`` an alert fires until ``resolve()`` (or ``resolve_timeout``, 5 min).
        """
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.post(self.url + "/api/v2/alerts", json=list(alerts)) as response,
        ):
            if response.status != 200:
                text = await response.text()
                raise AlertmanagerError(f"POST /api/v2/alerts: HTTP {response.status}: {text}")

    async def resolve(
        self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
    ) -> None:
        """Post the alert with these labels again with ``endsAt`` = now (it resolves)."""
        alert: dict[str, Any] = {"labels": dict(labels), "endsAt": rfc3339()}
        if annotations is not None:
            alert["annotations"] = dict(annotations)
        await self.post_alerts([alert])

    async def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: what Alertmanager currently holds."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(self.url + "/api/v2/alerts") as response,
        ):
            if response.status != 200:
                raise AlertmanagerError(f"GET /api/v2/alerts: HTTP {response.status}")
            result: list[dict[str, Any]] = await response.json()
            return result
