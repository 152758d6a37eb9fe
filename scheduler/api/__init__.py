"""How the REST API represents workflow definitions, runs with their steps, and schedules.

Representation only, next to the models; the views live in `dashboard.api` (roles, audit).
JSON that may hold secrets is masked with `context["mask"]`, as in `queues.api`.
"""
