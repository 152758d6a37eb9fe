"""GET /metrics: who may scrape, and one rendering reused for a few seconds.

A scrape is allowed by address and/or bearer token (RELAY's METRICS_ALLOWED_IPS and
METRICS_TOKEN). With neither set only this machine may scrape, and a request relayed by a
proxy is not "this machine" even though it arrives from loopback. A refused request gets
401/403 and a one-line reason, never data.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging

from django.core.cache import cache
from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dashboard.metrics import snapshot
from dashboard.metrics.collector import RelayCollector
from queues.conf import relay_settings

logger = logging.getLogger(__name__)

CACHE_KEY = "relay:metrics:text"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Headers a reverse proxy adds: their presence means the peer address is the proxy's.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = refuse(request)
    if refusal is not None:
        return refusal
    try:
        body = render()
    except (DatabaseError, InterfaceError):
        logger.exception("metrics: the database could not be read",
                         extra={"action": "metrics_scrape"})
        return _text("metrics unavailable: the database could not be read", 503)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def render() -> bytes:
    """The exposition text, from the cache while it is fresh."""
    ttl = relay_settings().METRICS_CACHE_SECONDS
    if ttl:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return cached
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(snapshot.take()))
    body = generate_latest(registry)
    if ttl:
        cache.set(CACHE_KEY, body, ttl)
    return body


def refuse(request: HttpRequest) -> HttpResponse | None:
    """None when the request may scrape; otherwise the 401/403 to send."""
    conf = relay_settings()
    token = conf.METRICS_TOKEN
    if conf.METRICS_ALLOWED_IPS is not None:
        allowed = [ipaddress.ip_network(str(e).strip(), strict=False)
                   for e in conf.METRICS_ALLOWED_IPS]
        if not _address_in(request, allowed):
            return _text("forbidden: this address may not scrape metrics", 403)
    elif token is None and (any(h in request.META for h in PROXY_HEADERS)
                            or not _address_in(request, LOOPBACK)):
        return _text("forbidden: only this machine may scrape metrics until RELAY sets "
                     "METRICS_TOKEN or METRICS_ALLOWED_IPS", 403)
    if token is None:
        return None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        response = _text("unauthorized: send Authorization: Bearer <metrics token>", 401)
        response["WWW-Authenticate"] = 'Bearer realm="relay-metrics"'
        return response
    scheme, _, presented = header.partition(" ")
    # Digests compared in constant time: neither the token nor its length leaks.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            hashlib.sha256(presented.strip().encode()).digest(),
            hashlib.sha256(token.strip().encode()).digest()):
        return _text("forbidden: invalid metrics token", 403)
    return None


def _address_in(request: HttpRequest, networks: list | tuple) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
