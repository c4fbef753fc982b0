"""How ``gateway serve`` serves: an asyncio front that no slow or idle client can starve.

gunicorn's threaded worker gives every open connection a thread until the request is read, so
eight clients that send their headers slowly, or fifty that connect and say nothing, leave no
thread for anyone else. Here a connection is a few kilobytes on an event loop until its request
is read whole, within deadlines, from a bounded number of connections per client address; only
then does the Flask application run, in a bounded pool of threads:

- ``guard``: connection limits per client address and in all (``ConnectionLimits``);
- ``worker``: the gunicorn worker class (``GatewayWorker``) that applies them, and the deadlines
  for a request's head and body; requests are parsed by gunicorn_h1c, gunicorn's C HTTP/1.1
  parser (``http_parser = "fast"`` in ``gateway.cli.serve.gunicorn_options``), which refuses
  ambiguous framing (request smuggling) before the application runs;
- ``bridge``: ``GatewayASGI``, which reads a request body whole (refusing what is over the size
  limit, never cutting it) and runs the WSGI application in threads.
"""
