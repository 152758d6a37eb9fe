"""Tasks that ship with Relay."""

from __future__ import annotations

from queues.registry import task


@task(name="relay.noop")
def noop(*args, **kwargs) -> None:
    """Does nothing: for benchmarks and for checking that a queue is served."""
    return None
