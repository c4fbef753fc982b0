"""The participant registry: who may exchange messages through the gateway."""
