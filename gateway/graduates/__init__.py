"""Graduates: their portal accounts, the messages about them, their access history and agreement offers."""
