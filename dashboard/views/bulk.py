"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


bulk = _todo
bulk_status = _todo
