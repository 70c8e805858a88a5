"""Tokens: reading a Bearer token, comparing tokens in constant time, admitting admins. Pure."""

from __future__ import annotations

import hmac

__all__ = ["admin_refusal", "bearer_token", "tokens_equal"]

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


def admin_refusal(authorization: str, *, admin_token: str, client_token: str) -> int | None:
    """The HTTP status refusing a request to an admin route, or None to let it through.

    Args:
        authorization: the request's `Authorization` header value ("" when absent).
        admin_token: `WS_ADMIN_TOKEN`; "" turns the admin routes off.
        client_token: `WS_AUTH_TOKEN`, the token clients connect with.

    Returns:
        None for the admin token; 403 for the client token (known, but not allowed here)
        and for every request while no admin token is set (no credential can help);
        401 for a missing or unknown token.
    """
    if not admin_token:
        return 403
    given = bearer_token(authorization)
    if tokens_equal(given, admin_token):
        return None
    if client_token and tokens_equal(given, client_token):
        return 403
    return 401
