"""Example tasks that `make run` enqueues so a fresh install has something to show."""
