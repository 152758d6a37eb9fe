"""Overview: what is waiting, running and failing right now, and the last 24 hours."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard import stats
from dashboard.access import access_for
from dashboard.views.base import page, render_page


@page
def overview(request: HttpRequest) -> HttpResponse:
    data = stats.overview(access_for(request))
    return render_page(request, "dashboard/overview.html", {"o": data, "chart": data.chart})
