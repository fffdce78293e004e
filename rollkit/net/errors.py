"""The error classes of talking to an endpoint, each saying what the client does about it.

Classes come from status codes and exception types, never from message text (see `exchange`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollkit.net.endpoint_state import EndpointState
    from rollkit.net.refusals import Signature


class FatalEndpointError(Exception):
    """The endpoint refused our credentials: continuing would only fail every request."""


class UniformRefusal(FatalEndpointError):
    """The endpoint refuses the request itself (unknown model, a refused parameter, a budget over
    the context), so it would refuse every record: stop, write nothing off (exit 2)."""


class OutageError(Exception):
    """Every endpoint has been unreachable for --max-outage seconds: stop, leaving the rest undone."""


class TransientError(Exception):
    """Worth another try. `counts`: against the request's attempts (not while the endpoint is down);
    `endpoint_answers`: how many answers the endpoint had given when this failed."""

    def __init__(self, reason: str, message: str, counts: bool = True, endpoint_answers: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.counts = counts
        self.endpoint_answers = endpoint_answers


class CutOffError(TransientError):
    """Cut off by our timeout after the server took the request: it may have done (and billed) the
    work. `server_up`: the probe found the server answering, so it was slow, not down."""

    def __init__(self, message: str, server_up: bool, counts: bool = True, endpoint_answers: int = 0) -> None:
        super().__init__("cut_off", message, counts, endpoint_answers)
        self.server_up = server_up


class PermanentError(Exception):
    """The server refused the request; `refusal` is (status, code, its message), `state` the endpoint."""

    def __init__(self, reason: str, message: str, refusal: Signature | None = None,
                 state: EndpointState | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.refusal = refusal
        self.state = state
