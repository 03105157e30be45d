"""Fixtures running the real Prometheus and Alertmanager binaries (Debian packages).

* ``fake_service``: a started ``FakeService`` (the service being rolled out).
* ``prometheus``: a started ``PrometheusServer`` scraping ``fake_service`` every second; the
  first scrape has landed when the test begins (that takes ~5.5 s).
* ``prometheus_factory``: ``await prometheus_factory(targets, **kwargs)`` for other targets or
  options (``lookback_delta``, ``job_name``, ``wait_for_targets``...).
* ``proxy``: a started ``FaultProxy`` in front of ``prometheus``: it records the queries
  asked and fails on the test's command.
* ``alertmanager_factory``: ``await alertmanager_factory(webhook_base_url, **kwargs)`` returns
  a started ``AlertmanagerServer`` whose webhook goes to ``<webhook_base_url>/alertmanager``.

Every process is stopped and its temp directory removed at teardown, whatever the outcome.
A missing binary is an error naming the Debian package, not a skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from tests.support.alertmanager_server import AlertmanagerFactory, AlertmanagerServer
from tests.support.fake_service import FakeService
from tests.support.fault_proxy import FaultProxy
from tests.support.prometheus_server import PrometheusFactory, PrometheusServer


@pytest.fixture
async def fake_service() -> AsyncIterator[FakeService]:
    service = FakeService()
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def prometheus_factory() -> Iterator[PrometheusFactory]:
    started: list[PrometheusServer] = []

    async def make(targets: Sequence[str], **kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(targets, **kwargs)
        started.append(server)
        await server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.close()


@pytest.fixture
async def prometheus(
    fake_service: FakeService, prometheus_factory: PrometheusFactory
) -> PrometheusServer:
    return await prometheus_factory([fake_service.target])


@pytest.fixture
async def proxy(prometheus: PrometheusServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(prometheus.url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def alertmanager_factory() -> Iterator[AlertmanagerFactory]:
    started: list[AlertmanagerServer] = []

    async def make(webhook_base_url: str, **kwargs: Any) -> AlertmanagerServer:
        server = AlertmanagerServer(webhook_base_url, **kwargs)
        started.append(server)
        await server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.close()
