"""PostgreSQL: the pool, the event log (append and read), tokens, idempotency records, schema status."""
