"""How the REST API represents the queue's rows and validates an enqueue request.

Only representation lives here, next to the models it describes. The views, authentication,
roles and audit are the control plane's (`dashboard.api`), which this app never imports:
values that may hold secrets are masked with the function the caller passes in the
serializer context (`context["mask"]`), and a serializer without one refuses to render.
"""
