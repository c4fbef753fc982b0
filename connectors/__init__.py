"""Outbound delivery adapters: how the gateway hands a message to a recipient's system.

The push connector (a zeep call to the recipient's SOAP endpoint) arrives with reliable delivery
(issue 5); pull recipients fetch from their mailbox through the gateway's own SOAP operations and
need no connector. ``base.Connector`` is the interface both sides of that work agree on.
"""
