"""Relay's scheduler and workflow engine, built on the queue engine's public API.

Public API::

    from scheduler import engine, firing
    from scheduler.definitions import sync

    sync.plan("workflows/"); sync.apply("workflows/", created_by="ci")
    run = engine.start_run("deploy-pipeline", {"service": "billing", "ref": "v2"})
    engine.cancel_run(run, by="alice"); engine.rerun(run, by="alice")
    firing.trigger(schedule, by="alice"); firing.backfill(schedule, start, end)

`queues` announces job outcomes (`queues.signals.job_finished`); `scheduler.receivers` turns
them into run progress. Commands: relay_workflows, relay_scheduler, relay_backfill, relay_run.
"""
