"""Workflows and schedules (built on the queue engine): see DESIGN.md."""
