"""What the graduate portal calls: accounts, access history, agreement offers.

One import for the portal; each idea lives in its own module:

- ``gateway.graduates.accounts``: :func:`activate`, :func:`authenticate`, :func:`account_by_id`.
"""

from __future__ import annotations

from gateway.graduates.accounts import account_by_id, activate, authenticate

__all__ = ["account_by_id", "activate", "authenticate"]
