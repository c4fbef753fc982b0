"""Routing: who a message goes to (a participant id, or a role plus a region)."""
