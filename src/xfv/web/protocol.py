"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn times out idle keep-alive connections but not a connection that never finishes its
headers: a client that opens sockets and sends a byte now and then (slowloris) would hold them
forever. :class:`HeaderTimeoutProtocol` closes a connection whose request headers are not complete
:data:`HEADER_TIMEOUT` seconds after it opened or after the request's first byte arrived.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

#: Seconds a client has to send a request's headers.
HEADER_TIMEOUT = 10.0


class HeaderTimeoutProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]  # uvicorn picks its class at import
    """uvicorn's HTTP protocol (httptools or h11) closing connections slow to send their headers."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._answered: Any = None
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._headers_done():
            self._disarm()
        elif self._deadline is None:
            self._arm()

    def on_response_complete(self) -> None:
        self._answered = self.cycle
        super().on_response_complete()
        if self._headers_done():  # a pipelined request already started
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_done(self) -> bool:
        """Whether the current request's headers are complete (it has a new request cycle)."""
        return self.cycle is not None and self.cycle is not self._answered

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self._headers_done() and not self.transport.is_closing():
            self.transport.close()
