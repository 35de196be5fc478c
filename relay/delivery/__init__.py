"""Outbound delivery: routing (smarthost or MX), the connection pool, the worker."""
