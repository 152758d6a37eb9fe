"""The three roles, as Django groups. The data migration creates them; `sync_roles()` can be
called again (e.g. from `manage.py shell`) to restore their permissions without touching other
groups.

Dashboard permissions are the custom ones on `dashboard.ControlPlane`; the model permissions
let the same people use the Django admin (they also need `is_staff`).
"""

from __future__ import annotations

VIEWER = "Relay viewer"
OPERATOR = "Relay operator"
ADMIN = "Relay admin"

# What each action needs, by name (dashboard.<codename>).
ACTIONS = ("trigger", "rerun", "cancel", "retry", "discard", "pause",
           "manage_schedules", "manage_definitions")

_VIEW_MODELS = [
    ("queues", "job"), ("queues", "execution"), ("queues", "deadletter"), ("queues", "worker"),
    ("queues", "queuepause"), ("scheduler", "workflowdefinition"), ("scheduler", "workflowrun"),
    ("scheduler", "steprun"), ("scheduler", "schedule"), ("scheduler", "firing"),
    ("scheduler", "schedulerlease"), ("dashboard", "auditentry"), ("dashboard", "bulkoperation"),
]

# Everyone with a role may hold API tokens; the admin shows non-superusers their own only, and
# a token acts with its user's role.
_OWN_TOKENS = [("dashboard", f"{verb}_apitoken") for verb in ("view", "add", "change")]

ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    VIEWER: [("dashboard", "view_dashboard")]
    + [(app, f"view_{model}") for app, model in _VIEW_MODELS] + _OWN_TOKENS,
}
ROLE_PERMISSIONS[OPERATOR] = ROLE_PERMISSIONS[VIEWER] + [
    ("dashboard", code) for code in ("trigger", "rerun", "cancel", "retry", "discard", "pause")
] + [("scheduler", "view_alertdelivery")]
# Alert channels hold webhook addresses (a Slack URL is a credential): admins only.
ROLE_PERMISSIONS[ADMIN] = ROLE_PERMISSIONS[OPERATOR] + [
    ("scheduler", f"{verb}_alertchannel") for verb in ("view", "add", "change", "delete")
] + [
    ("dashboard", "manage_schedules"), ("dashboard", "manage_definitions"),
    ("scheduler", "add_schedule"), ("scheduler", "change_schedule"),
    ("scheduler", "delete_schedule"), ("dashboard", "view_rolescope"),
    ("dashboard", "add_rolescope"), ("dashboard", "change_rolescope"),
    ("dashboard", "delete_rolescope"),
]


def sync_roles(apps=None) -> None:
    """Create the three groups and give each exactly its role's permissions.

    In a migration (`apps` is the historical registry) a permission of a model that a later
    migration creates is left out; that migration syncs the roles again."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    historical = apps is not None and apps is not global_apps
    apps = apps or global_apps
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for app_label, codename in perms:
            perm = Permission.objects.filter(content_type__app_label=app_label,
                                             codename=codename).first()
            if perm is None and historical:
                continue  # its model comes with a later migration, which syncs again
            if perm is None:
                raise LookupError(f"permission {app_label}.{codename} does not exist")
            wanted.append(perm)
        group.permissions.set(wanted)

