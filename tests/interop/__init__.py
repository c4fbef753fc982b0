"""Interoperability: other XML security stacks sign what the gateway accepts and check what it signs."""
