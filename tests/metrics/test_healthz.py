"""/healthz: 200 while the database answers, 503 (naming nothing of it) when it does not."""

from __future__ import annotations

from django.db import connection
from django.test import Client

from tests.metrics.conftest import closed_port


def test_healthz_is_ok_without_login(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert Client().head("/healthz").status_code == 200
    assert Client().post("/healthz").status_code == 405


def test_healthz_is_503_when_the_database_is_unreachable(transactional_db, tmp_path):
    saved = dict(connection.settings_dict)
    connection.close()
    # Really unreachable: a port nobody listens on, or a file in a folder that does not exist.
    if connection.vendor == "postgresql":
        connection.settings_dict.update(HOST="127.0.0.1", PORT=closed_port())
    else:
        connection.settings_dict["NAME"] = str(tmp_path / "missing" / "relay.sqlite3")
    try:
        response = Client().get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    assert Client().get("/healthz").status_code == 200  # and it recovers with the database
