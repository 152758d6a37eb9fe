"""PostgreSQL: wake listening workers when due jobs are inserted, in the inserting statement.

A statement-level trigger with a transition table sends one pg_notify per queue per statement
(PostgreSQL also folds duplicates within a transaction), delivered on commit. It costs the
enqueuer no extra round trip and wakes workers for jobs inserted by any client. SQLite: no-op.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION relay_notify_due_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relay_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs
          WHERE state IN ('scheduled', 'failed') AND run_at <= statement_timestamp() + interval '1 second') AS q;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS relay_notify_due_jobs ON queues_job;
CREATE TRIGGER relay_notify_due_jobs
    AFTER INSERT ON queues_job
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION relay_notify_due_jobs();
"""

DROP = """
DROP TRIGGER IF EXISTS relay_notify_due_jobs ON queues_job;
DROP FUNCTION IF EXISTS relay_notify_due_jobs();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("queues", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
