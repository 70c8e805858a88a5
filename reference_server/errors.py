"""The reference server's one small error tree.

    HiveError
    ├── SettingsError      a setting is missing or out of range (start-up refuses to run)
    ├── TextError          JSON text refused where it enters (not UTF-8, lone surrogates, too
    │                      deep, NaN); each edge turns it into its own error (frame, 422, metric)
    ├── LimitsError        a runtime limit change or listing query is refused; HTTP 400
    ├── FrameError         a client frame is refused; becomes an `error` frame, connection stays
    ├── DataRequestError   `request_data` cannot be answered; becomes a `data_error` frame
    ├── PublishError       a publish is refused (bad subscription, type or data); HTTP 422
    │   └── PayloadTooLarge    its body is larger than max_inbound_message_bytes; HTTP 413
    └── BrokerUnavailable  the broker cannot take a publish now; HTTP 503 with Retry-After

Errors are raised deep and caught only at the boundary (the session, the HTTP handlers and
start-up), where each becomes a frame, a close code or a response, plus a metric.
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailable",
    "DataRequestError",
    "FrameError",
    "HiveError",
    "LimitsError",
    "PayloadTooLarge",
    "PublishError",
    "SettingsError",
    "TextError",
]


class HiveError(Exception):
    """Base of every error the reference server raises on purpose."""


class SettingsError(HiveError, ValueError):
    """A setting is invalid. The message names the environment key to fix."""


class TextError(HiveError, ValueError):
    """Text from outside is not valid JSON text: not UTF-8, a lone surrogate, nested too
    deep, or a number JSON cannot carry (NaN, Infinity).

    Attributes:
        code: the stable error code: `invalid_text` (not valid Unicode) or `invalid_json`.
        where: where it was found: a JSON path (`$.data.name`), `byte N`, or `text`.
        reason: what is wrong there, as a sentence fragment.
        decoded: the decoded value when only a check after decoding failed, else None
            (so an edge can still echo a valid correlation id).
    """

    def __init__(self, code: str, where: str, reason: str) -> None:
        super().__init__(f"{where} {reason}")
        self.code = code
        self.where = where
        self.reason = reason
        self.decoded: object = None


class LimitsError(HiveError):
    """A runtime limit change (or the connections listing's query) is refused; HTTP 400.

    Attributes:
        key: the body key or query parameter at fault; "" when the body as a whole is.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class FrameError(HiveError):
    """A client frame is refused.

    Attributes:
        code: the stable machine-readable error code sent in the `error` frame.
        message: the human-readable message (the original platform's strings).
        correlation_id: the refused frame's correlation id when it carried a valid one.
    """

    def __init__(self, code: str, message: str, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.correlation_id = correlation_id


class DataRequestError(HiveError):
    """A `request_data` cannot be answered; the message goes into `data_error.error`."""


class PublishError(HiveError):
    """A publish is refused because of its input. The message says what to change.

    Attributes:
        status: the HTTP status the publish route answers with (422 Unprocessable Content).
    """

    status: int = 422


class PayloadTooLarge(PublishError):
    """A publish body is larger than `max_inbound_message_bytes`.

    Attributes:
        status: 413 (Content Too Large, RFC 9110 §15.5.14).
    """

    status = 413


class BrokerUnavailable(HiveError):
    """The broker cannot accept a publish right now.

    Attributes:
        retry_after: seconds after which the publisher should try again.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
