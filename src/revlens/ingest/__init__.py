"""Ingestion: the durable delivery log, its group committer, and the loader into the store."""
