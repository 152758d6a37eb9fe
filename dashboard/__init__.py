"""The operators' control plane (HTMX pages, roles, audit log): see DESIGN.md."""
