"""Give the roles their API-token and alert permissions (models added since 0002_roles)."""

from django.db import migrations


def sync(apps, schema_editor):
    from dashboard.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0003_api_token"),
        ("scheduler", "0002_alerts"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
