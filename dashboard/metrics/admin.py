"""The metrics' running totals, read-only: they change only by folding (`rollup`), and
editing one would make its counter jump."""

from __future__ import annotations

from django.contrib import admin

from dashboard.metrics.models import Rollup, Tally
from queues.admin import ReadOnlyAdmin


@admin.register(Tally)
class TallyAdmin(ReadOnlyAdmin):
    list_display = ("kind", "task", "queue", "label", "count", "seconds")
    list_filter = ("kind",)
    search_fields = ("task", "queue")
    exclude = ("buckets",)


@admin.register(Rollup)
class RollupAdmin(ReadOnlyAdmin):
    list_display = ("id", "version", "folded_at", "jobs_folded", "dead_letters_folded",
                    "executions_until")
