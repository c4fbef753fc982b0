"""Delivery: the outbox worked by dramatiq actors (push connectors and pull mailboxes: issue 5)."""
