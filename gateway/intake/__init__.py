"""Intake: from bytes on the wire to an accepted, stored message, as a pipeline of stages."""
