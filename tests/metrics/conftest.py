"""Scraping /metrics the way Prometheus does, and reading the samples back."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from dashboard.metrics import rollup

TOKEN = "test-metrics-token-0123456789"


@pytest.fixture
def relay(settings):
    """relay(KEY=value, ...): RELAY options for this test, over the test settings; the
    rendered output is not cached unless a test asks for it."""
    cache.clear()

    def configure(**options) -> None:
        settings.RELAY = {**settings.RELAY, "METRICS_CACHE_SECONDS": 0, **options}

    configure()
    yield configure
    cache.clear()


@pytest.fixture
def settle_now(monkeypatch):
    """Rows are folded as soon as they exist (no settling time), so a test can fold with the
    database's real clock and keep working after it."""
    monkeypatch.setattr(rollup, "SETTLE", 0.0)


class Samples:
    """The parsed exposition: value(name, **labels) sums the samples that match."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(found)

    def by(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """{label values: value} for every sample of `name`, keyed by `labels` in order."""
        out: dict[tuple[str, ...], float] = {}
        for s in self.samples:
            if s.name == name:
                key = tuple(s.labels[label] for label in labels)
                out[key] = out.get(key, 0) + s.value
        return out


def scrape(client: Client | None = None, **headers) -> Samples:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return Samples(response.content.decode())


def closed_port() -> int:
    """A local TCP port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
