"""The graduate portal at ``/graduate/``: activation and sign-in, grants, the access history, agreement offers.

Server-rendered pages (no script needed; one small static script adds a copy button), in Chinese
and English, over the core in ``gateway.graduates`` and ``gateway.grants``. ``docs/portal.md``
describes what a graduate sees.
"""
