"""Dashboard pages, one module per area; shared plumbing in `base`."""
