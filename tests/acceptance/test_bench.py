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
                 single_enqueues=20, also_workers=[2], json=str(report), stdout=out)
    text = out.getvalue()
    fields = ["bulk_enqueue_per_s", "single_enqueue_per_s", "drain_per_s", "p50_start_ms",
              "p99_start_ms", "mix_per_s", "mix_success", "mix_dead_letter",
              "drain_2_workers_per_s"]
    median = next(line for line in text.splitlines() if line.startswith("median:"))
    for field in fields:
        value = float(re.search(rf"{field}=([\d,.]+)", median).group(1).replace(",", ""))
        assert value > 0, text
    assert re.search(r"drain with 2 / 1 worker processes \(medians\) = [\d.]+x", text), text
    data = json.loads(report.read_text())
    assert len(data["runs"]) == 2 and set(data["median"]) == set(fields)
    # The mix: 5 % of 200 jobs raise once and end dead-lettered, the rest succeed.
    for result in data["runs"]:
        assert (result["mix_success"], result["mix_dead_letter"]) == (190, 10)
    assert not Job.objects.filter(queue="relay-bench").exists()  # cleans up after itself


@pytest.mark.django_db(transaction=True)
def test_relay_soak_samples_worker_memory_and_prints_a_verdict(monkeypatch, tmp_path):
    for key, value in database_env().items():
        monkeypatch.setenv(key, value)
    out = StringIO()
    report = tmp_path / "soak.json"
    call_command("relay_soak", minutes=0.1, rate=50, workers=1, concurrency=2, sample_every=1,
                 json=str(report), stdout=out)
    text = out.getvalue()
    verdict = next(line for line in text.splitlines() if line.startswith("verdict:"))
    assert re.search(r"RSS after warm-up [\d.]+ MB, at end [\d.]+ MB, growth [+-][\d.]+ %",
                     verdict), text
    assert verdict.endswith(("PASS (< 10 %)", "FAIL (< 10 %)")), text  # memory is not judged here
    data = json.loads(report.read_text())
    assert len(data["samples"]) >= 3
    assert all(s["supervisors_kb"] > 0 and s["handlers"] == 2 for s in data["samples"]), data
    assert data["jobs"].get("success", 0) > 0 and data["jobs"].get("dead_letter", 0) > 0
    assert set(data["verdict"]) >= {"rss_after_warmup_mb", "rss_at_end_mb", "growth_pct",
                                    "passed"}
    assert not Job.objects.filter(queue="relay-soak").exists()  # cleans up after itself
