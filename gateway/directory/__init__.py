"""The public directory of service organisations (HTML, JSON, CSV)."""
