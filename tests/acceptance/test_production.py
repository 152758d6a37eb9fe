"""The production setup works as documented: DEBUG off, gunicorn from the deploy config,
static files from collectstatic served by WhiteNoise, HTTPS enforced behind a proxy."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, database_env, wait_for

pytestmark = pytest.mark.slow


def production_env(**extra: str) -> dict[str, str]:
    env = database_env()
    env.update(
        DJANGO_SETTINGS_MODULE="relay_project.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="relay.example.com,127.0.0.1",
        RELAY_EXAMPLES="0",
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, headers: dict[str, str] | None = None):
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Host": "relay.example.com", **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    static_root = tmp_path / "static"
    env = production_env(STATIC_ROOT=str(static_root), RELAY_BEHIND_PROXY="1")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=ROOT, env=env, check=True, timeout=120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.update(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1")
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "relay_project/deploy/gunicorn.conf.py"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            return False

    wait_for(up, timeout=30, message="gunicorn to listen")
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_gunicorn_serves_relay_over_https_only_with_hashed_static_files(gunicorn):
    https = {"X-Forwarded-Proto": "https"}

    # Probes reach /healthz over plain HTTP inside the network: not redirected.
    status, _, body = fetch(f"{gunicorn}/healthz")
    assert status == 200 and '"ok"' in body
    status, _, body = fetch(f"{gunicorn}/metrics")  # loopback scrape, no token configured
    assert status == 200 and "relay_workers_alive" in body

    status, headers, _ = fetch(f"{gunicorn}/accounts/login/")
    assert status == 301 and headers["Location"] == "https://relay.example.com/accounts/login/"

    status, headers, page = fetch(f"{gunicorn}/accounts/login/", https)
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Content-Security-Policy" in headers
    assert "Secure" in headers["Set-Cookie"] and "csrftoken" in headers["Set-Cookie"]

    # collectstatic's manifest names the stylesheet by its content hash; WhiteNoise serves it
    # with a far-future cache lifetime.
    css = re.search(r'href="(/static/dashboard/relay\.[0-9a-f]{12}\.css)"', page)
    assert css, page
    status, headers, body = fetch(gunicorn + css.group(1), https)
    assert status == 200 and "max-age=315360000" in headers["Cache-Control"] and body

    status, _, _ = fetch(f"{gunicorn}/dashboard/", https)
    assert status == 302  # login required; no DEBUG page anywhere
    status, _, body = fetch(f"{gunicorn}/no-such-page/", https)
    assert status == 404 and "Traceback" not in body and "DEBUG" not in body
