"""Web-side errors and the HTTP status each user-facing error answers with.

Every :class:`~xfv.errors.XfvError` is the user's problem (bad input, missing data), so it maps to a
4xx status with its message; anything else is a bug and stays a 500.
"""

from __future__ import annotations

from xfv.errors import (
    DatasetError,
    ImageError,
    ImageTooLargeError,
    MethodError,
    ModelError,
    NoFaceError,
    NotFoundError,
    XfvError,
)


class UploadTooLargeError(ImageError):
    """An uploaded file over ``get_settings().max_upload_bytes`` (413)."""


class UnsupportedImageError(ImageError):
    """An uploaded file that is not an image of an accepted format (415)."""


class TooManyJobsError(XfvError):
    """The server's job queue is full (429); ``retry_after`` says in how many seconds to ask again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConflictError(XfvError):
    """A request that the store's current state cannot satisfy, e.g. a model not loadable here (409)."""


#: Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[XfvError], int], ...] = (
    (NotFoundError, 404),
    (MethodError, 404),
    (UploadTooLargeError, 413),
    (ImageTooLargeError, 413),
    (UnsupportedImageError, 415),
    (NoFaceError, 422),
    (ImageError, 422),
    (TooManyJobsError, 429),
    (ConflictError, 409),
    (DatasetError, 400),
    (ModelError, 400),
)


def status_for(error: XfvError) -> int:
    """The HTTP status of a user-facing error (400 when nothing more specific applies)."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)
