"""Alerts: dead letters, failed runs, backlogged or unserved queues and a stalled scheduler,
sent to webhooks, Slack-compatible webhooks and email.

    detect.run_checks()      # the leading scheduler's tick: look, throttle, write the outbox
    detect.check_scheduler() # relay_watchdog: the scheduler's last tick
    outbox.deliver_due()     # the scheduler's sender thread and relay_watchdog

Nothing here runs in a worker or inside a job's transaction: detectors read what the queue
recorded, so a failing or slow receiver can delay alerts but never jobs.
"""
