"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


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


class MethodError(XfvError):
    """An X-Map method that is not registered (see ``xfv.method.xmaps.XMAP_METHODS``)."""


class NotFoundError(XfvError):
    """A pair, image, map, job or upload that the store does not hold (the web answers 404)."""
