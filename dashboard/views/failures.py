"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


dead_letters = _todo
groups = _todo
retry_group = _todo
