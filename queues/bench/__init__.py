"""Baselines that relay_bench measures in the same run as Relay: a peer queue (procrastinate)
and the database's own floor (a bare psycopg claim+ack loop)."""

DRAIN_POLL = 0.05  # how often a drain is checked for completion, for Relay and peers alike
