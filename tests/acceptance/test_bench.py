"""relay_bench runs real workers and prints every figure it promises."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from queues.models import Job
from tests.conftest import database_env

pytestmark = pytest.mark.slow


@pytest.mark.django_db(transaction=True)
def test_relay_bench_prints_rates_and_latency(monkeypatch, tmp_path):
    for key, value in database_env().items():
        monkeypatch.setenv(key, value)
    out = StringIO()
    report = tmp_path / "bench.json"
    call_command("relay_bench", jobs=200, workers=1, concurrency=2, runs=2, latency_samples=3,
                 single_enqueues=20, json=str(report), stdout=out)
    text = out.getvalue()
    fields = ["bulk_enqueue_per_s", "single_enqueue_per_s", "drain_per_s", "p50_start_ms",
              "p99_start_ms"]
    median = next(line for line in text.splitlines() if line.startswith("median:"))
    for field in fields:
        value = float(re.search(rf"{field}=([\d,.]+)", median).group(1).replace(",", ""))
        assert value > 0, text
    data = json.loads(report.read_text())
    assert len(data["runs"]) == 2 and set(data["median"]) == set(fields)
    assert not Job.objects.filter(queue="relay-bench").exists()  # cleans up after itself
