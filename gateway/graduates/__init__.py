"""Graduates: the index of which accepted business messages are about which graduate (by keyed hash)."""
