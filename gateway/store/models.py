"""Imports every model module so that ``Base.metadata`` knows all tables (for Alembic)."""

from gateway.access import models as access_models
from gateway.agreements import models as agreements_models
from gateway.archives import models as archives_models
from gateway.audit import models as audit_models
from gateway.auditor import models as auditor_models
from gateway.graduates import models as graduates_models
from gateway.grants import models as grants_models
from gateway.messages import models as messages_models
from gateway.registrations import models as registrations_models
from gateway.registry import models as registry_models
from gateway.staff import models as staff_models
from gateway.web import models as web_models

__all__ = [
    "access_models",
    "agreements_models",
    "archives_models",
    "audit_models",
    "auditor_models",
    "graduates_models",
    "grants_models",
    "messages_models",
    "registrations_models",
    "registry_models",
    "staff_models",
    "web_models",
]
