"""The graduate employment domain as a pipeline stage: code checks, access rights, service rules."""
