"""The REST API's views, authentication, permissions, throttling, paging and routes.

They live in the dashboard, not with the data they expose, because roles (`dashboard.access`)
and the audit log (`dashboard.actions`) belong here: every API call sees exactly what the
dashboard would show the same user, and every change goes through the same action function,
which checks the permission and writes the same audit entry (source "api"). How rows look
as JSON is defined next to the models, in `queues.api` and `scheduler.api`.
"""
