"""Password hashing for every account the gateway keeps (graduates, auditors, administrators).

argon2id through argon2-cffi with its RFC 9106 low-memory profile (64 MiB, 3 passes): a stolen
table of hashes costs an attacker that much memory per guess. ``verify`` never raises for a wrong
password; ``needs_rehash`` lets a sign-in upgrade a hash made with older parameters.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 takes any length; a cap stops a megabyte password from costing a megabyte hash

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
# Verified against when an account does not exist, so that a sign-in for an unknown name costs as
# much as one for a known name and the timing tells nothing.
_DUMMY = _hasher.hash("no such account: timing equaliser")


class WeakPassword(ValueError):
    """A new password that does not meet the rules; the message says which."""


def check_strength(password: str) -> None:
    """Raise :class:`WeakPassword` unless ``password`` is acceptable for a new account."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs at least four different characters")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (checked with :func:`check_strength` first)."""
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; with no hash (unknown account) always False, at equal cost."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
