"""Per-device API keys: random, shown once, stored only as a salted scrypt hash.

>>> key = new_key()
>>> stored = hash_key(key)
>>> verify_key(key, stored), verify_key("wrong", stored)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "bgk_"
# Keys carry 256 random bits, so a modest work factor is plenty; it keeps verification cheap.
_N, _R, _P = 2**12, 8, 1


def new_key() -> str:
    """A fresh API key."""
    return PREFIX + secrets.token_urlsafe(32)


def _scrypt(key: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_key(key: str) -> str:
    """The form a key is stored in: ``scrypt$n$r$p$salt$hash`` (hex)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(key, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_key(key: str, stored: str) -> bool:
    """Whether ``key`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(key, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def fingerprint(key: str) -> bytes:
    """A fast digest of a key, for remembering keys already verified in this process."""
    return hashlib.sha256(key.encode()).digest()
