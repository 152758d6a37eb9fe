"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


schedule_list = _todo
pause = _todo
resume = _todo
trigger = _todo
