"""What the graduate portal calls: accounts, access history, agreement offers.

One import for the portal; each idea lives in its own module:

- ``gateway.graduates.accounts``: :func:`activate`, :func:`authenticate`, :func:`account_by_id`;
- ``gateway.graduates.history``: :func:`history` (the data tracker), :class:`HistoryItem`;
- ``gateway.graduates.offers``: :func:`offers`, :func:`respond_to_offer`, :class:`Offer`, :class:`OfferAnswer`.

The graduate's grants are ``gateway.grants.services``.
"""

from __future__ import annotations

from gateway.graduates.accounts import account_by_id, activate, authenticate
from gateway.graduates.history import EVENTS, HistoryItem, history
from gateway.graduates.offers import Offer, OfferAnswer, offers, respond_to_offer

__all__ = [
    "EVENTS",
    "HistoryItem",
    "Offer",
    "OfferAnswer",
    "account_by_id",
    "activate",
    "authenticate",
    "history",
    "offers",
    "respond_to_offer",
]
