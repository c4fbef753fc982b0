"""Destination registrations (毕业去向登记) and their filing: the source of truth for archive routing."""
