"""The Flask application: factory, health checks; each domain brings its own blueprint."""
