"""The HTTP service: webhook route, admin API, and (later) the query API and dashboard."""
