"""Reading photos: any common format, EXIF orientation applied, greyscale and RGBA made RGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xfv.errors import ImageError, ImageTooLargeError

#: Larger images are refused (decompression bombs, accidental raw scans).
MAX_PIXELS = 40_000_000


def load_image(path: Path | str) -> np.ndarray:
    """Read an image file as uint8 RGB (h, w, 3); a clear ``ImageError`` names the file and problem."""
    return decode_image(read_image_file(path), str(path))


def read_image_file(path: Path | str) -> bytes:
    """An image file's bytes, undecoded; a clear ``ImageError`` for a missing or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def decode_image(
    data: bytes, name: str = "image", *, max_pixels: int = MAX_PIXELS, min_side: int | None = None
) -> np.ndarray:
    """Decode image bytes (an upload, say) as uint8 RGB; ``name`` is used in error messages.

    The size is checked from the header before any pixel is decoded: more than ``max_pixels``
    raises :class:`ImageTooLargeError`. With ``min_side``, a JPEG is decoded at the smallest of
    1/2, 1/4 or 1/8 scale that keeps both sides at least that long (a photo to be scaled down
    anyway costs a fraction of the time and memory), and that reduced size is what is checked."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if min_side is not None and image.format in ("JPEG", "MPO"):
                image.draft(None, (min_side, min_side))
            if image.width * image.height > max_pixels:
                raise ImageTooLargeError(
                    f"{name}: image too large ({image.width}x{image.height} pixels; "
                    f"at most {max_pixels / 1e6:g} megapixels are decoded)"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            return np.asarray(_to_rgb(image), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name}: image too large (a decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: truncated or corrupt image ({exc})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode; transparency is composited over white, not dropped to black."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / max(float(array.max()), 1.0)
        return Image.fromarray((array * scale).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")
