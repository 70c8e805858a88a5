"""Tokens: reading a Bearer token from a header, and comparing it in constant time. Pure."""

from __future__ import annotations

import hmac

__all__ = ["bearer_token", "tokens_equal"]

_BEARER = "bearer "


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header value; "" for any other.

    The scheme is matched case-insensitively (RFC 9110 §11.1).
    """
    scheme = authorization[: len(_BEARER)]
    return authorization[len(_BEARER) :] if scheme.lower() == _BEARER else ""


def tokens_equal(given: str, expected: str) -> bool:
    """Compare a presented token with the expected one in constant time.

    Constant time, so that response timing does not reveal how much of a token matched.
    Never raises: a presented token holding a lone surrogate is compared by its code points
    (`surrogatepass`), so it simply does not match.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
