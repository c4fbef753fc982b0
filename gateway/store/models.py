"""Imports every model module so that ``Base.metadata`` knows all tables (for Alembic)."""

from gateway.messages import models as messages_models
from gateway.registry import models as registry_models

__all__ = ["messages_models", "registry_models"]
