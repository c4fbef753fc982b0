"""What an operator watches: Prometheus metrics at ``/metrics`` and one JSON log line per request and
per delivery attempt (docs/operations.md, *Metrics* and *Logs*).

``instruments`` holds the counters and histograms the intake feeds (per process; under gunicorn in
prometheus-client's multiprocess mode), ``collector`` the gauges read from the store at scrape time,
``events`` the JSON log lines, ``views`` the ``/metrics`` endpoint and the request hooks, and
``serving`` what ``gateway serve`` adds to gunicorn.
"""
