"""The README's screenshots, made from a day of realistic traffic (tests/browser/seed.py):

    RELAY_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py

writes dashboard/docs/screenshots/{overview,job,run}.png. Skipped otherwise (make test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import seed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("RELAY_SCREENSHOTS"),
                       reason="RELAY_SCREENSHOTS=1 remakes the README screenshots"),
]

SHOTS = Path(__file__).resolve().parents[2] / "dashboard" / "docs" / "screenshots"


def test_readme_screenshots(login, tmp_path, settings):
    # The seeded workers heartbeat once; keep them "alive" while the pictures are taken.
    settings.RELAY = {**settings.RELAY, "WORKER_STALE_AFTER": 3600}
    data = seed.showcase(tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = login("admin", username="alice")
    page.goto("/dashboard/")
    page.get_by_label("Refresh interval").select_option("0")
    page.reload()
    expect(page.locator("#throughput-chart")).to_be_visible()
    page.screenshot(path=SHOTS / "overview.png", full_page=True)

    page.goto(f"/dashboard/jobs/{data.charge.pk}/")
    expect(page.locator("article.attempt")).to_have_count(3)
    page.screenshot(path=SHOTS / "job.png", full_page=True)

    page.goto(f"/dashboard/runs/{data.deploy.pk}/")
    expect(page.locator("svg g.node")).to_have_count(7)
    page.screenshot(path=SHOTS / "run.png", full_page=True)
