"""Storage: one Store interface, one implementation per backend (DuckDB is the embedded default)."""
