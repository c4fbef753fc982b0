"""Staff accounts: auditors and administrators who sign in to the gateway's web pages."""
