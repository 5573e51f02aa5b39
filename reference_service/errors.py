"""The one error of the service's layers: an API answer other than success, raised by rules, the orchestrator
and the HTTP layer alike, and turned into the spec's error body by the HTTP layer only."""

from __future__ import annotations


class ServiceRefusal(Exception):
    """An API answer other than success: HTTP status plus the real service's reason text."""

    def __init__(self, status: int, reason: str, *, close: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        #: The connection is closed after the answer: what is left of the request's body is not read.
        self.close = close
