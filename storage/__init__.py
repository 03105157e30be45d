"""State in SQL: SQLite by default, PostgreSQL for several replicas."""
