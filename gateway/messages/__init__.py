"""Accepted messages and their delivery records (the outbox of the delivery stage)."""
