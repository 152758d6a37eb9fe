"""Prometheus metrics at /metrics, aggregated from the database so that every worker on every
machine counts, whichever web process is scraped.

`rollup` keeps the counters (enqueued jobs, attempts by outcome with their durations, dead
letters) as running totals folded in from the queue's history tables, so a scrape reads only
what happened since the last fold and counts survive `relay_prune`. `snapshot` adds the live
gauges (queues, workers, scheduler, workflow runs); `collector` turns a snapshot into metric
families; `view` guards and caches the endpoint.
"""
