"""Reference agency systems: small SOAP clients and services that use the gateway as real ones would.

A university, an education department, talent service agencies, employers and a household
registration office, each with its own key and certificate, its own endpoint (push) or mailbox
poller (pull), acting on what it receives. ``gateway demo`` runs them through a graduation season;
agency developers can read them as worked examples. They use only the public SDK
(``gateway.sdk``), never the gateway's internals (a test checks the imports).
"""
