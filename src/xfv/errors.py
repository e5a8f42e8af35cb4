"""User-facing errors, one class per kind of bad input, raised the same wherever that input comes in
(Python API, CLI, store, web): the CLI prints the message as one line and exits 2, the web answers
4xx with it (:mod:`xfv.web.errors` maps classes to statuses)."""


class XfvError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ImageError(XfvError):
    """An image cannot be read or holds no usable face."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than xfv decodes (a decompression bomb, a raw scan)."""


class NoFaceError(ImageError):
    """No face was detected in a photo."""


class DatasetError(XfvError):
    """A dataset root or protocol file is missing or malformed."""


class ModelError(XfvError):
    """A model cannot be found, loaded or converted."""


class CalibrationError(XfvError):
    """A calibrator cannot be fitted, used or loaded; the message names the cause."""


class StoreError(XfvError):
    """The database cannot be reached or used; the message names the database (without password)."""


class MethodError(XfvError):
    """An X-Map method that is not registered (see ``xfv.method.xmaps.XMAP_METHODS``)."""


class NotFoundError(XfvError):
    """A pair, image, map, job or upload that the store does not hold (the web answers 404)."""
