"""GET /healthz: is this web process up and can it reach the database?

For load balancers and liveness probes: no login, no data beyond ok/error, never cached.
Workers, queues and the scheduler are judged by `manage.py relay_status`, not here: a web
process should not be restarted because no worker is running.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except (DatabaseError, InterfaceError):
        # The reason goes to the log; the response names no host, user or driver message.
        logger.warning("healthz: database unreachable", exc_info=True,
                       extra={"action": "healthz"})
        connection.close()  # the next request reconnects instead of reusing a broken link
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
