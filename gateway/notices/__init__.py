"""Notices to graduates: a row when something happens to their paperwork, shown in the portal and e-mailed.

``record.notify`` is the one cheap insert the domain calls in its own transaction; ``mail`` sends the
e-mails later, from the workers' periodic sweep, with retries (never in a request or the intake).
"""
