"""A no-reference image-quality score in [0, 1] for a face image, stored per image at ingest.

What it is: the product of four simple, explainable measurements taken on the face region (found
as the model pipeline would: the known box for LFW deep-funneled images, the whole image for
aligned crops, dlib's HOG detector for photos), resampled to 64x64 grey so faces of any framing
and file size are measured at one scale:

- ``sharpness`` = 1 - exp(-r / 0.12), r = var(Laplacian) / (var(grey) + 1): high-frequency energy
  relative to contrast. Blur and upsampled low-resolution faces score low (on LFW deep-funneled:
  median 0.83, Gaussian blur sigma 2 gives 0.27, downsampled to 30 px and back 0.14).
- ``contrast`` = min(1, std(grey) / 40): flat, washed-out or very dark faces score low.
- ``exposure`` = (1 - ((mean - 128) / 128)^2) x (1 - share of clipped pixels <= 5 or >= 250).
- ``resolution`` = min(1, native face side in pixels / 64): tiny faces score low.

Why this and not BRISQUE (which XQLFW's authors used) or a face-quality network (SER-FIQ,
MagFace): BRISQUE is a regressor trained on human opinion scores of generic photos; it needs its
trained model, which xfv would have to ship, and it is no more face-specific than this. Learned
face-quality scores depend on one recognition model, while this score must be a property of the
image, the same for every model in the explorer. This composite is deterministic, fast (about a
millisecond an image), needs no weights, and every part can be explained to a user.

What it does not measure: pose, occlusion, expression, or how well a model will recognise the
face; JPEG blocking and sensor noise raise the Laplacian and so are not penalised (can even look
"sharp"). Scores rank images of one dataset well; across datasets of different framing they are
only roughly comparable. The constants were chosen on LFW deep-funneled images so that typical
LFW faces score high and clearly degraded versions of them low.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from xfv.faces.align import LFW_FUNNELED_BOX
from xfv.faces.choice import FaceChoice, choose_face
from xfv.faces.detect import Box, detect_faces

#: Version of the score: bump it whenever a change here changes scores, so cached scores are recomputed.
QUALITY_VERSION = 1
#: Side of the grey face patch every measurement is taken on.
MEASURE_SIZE = 64
#: Relative Laplacian energy at which sharpness reaches 1 - 1/e.
SHARPNESS_SCALE = 0.12
#: Grey-level standard deviation counted as full contrast.
FULL_CONTRAST = 40.0
#: Grey levels counted as clipped (crushed shadows or blown highlights).
CLIP_LOW, CLIP_HIGH = 5, 250
#: Side of LFW's images, for which ``LFW_FUNNELED_BOX`` is given.
LFW_SIZE = 250


@dataclass(frozen=True)
class ImageQuality:
    """The parts of the quality score, each in [0, 1]; ``score`` is their product."""

    sharpness: float
    contrast: float
    exposure: float
    resolution: float

    @property
    def score(self) -> float:
        return self.sharpness * self.contrast * self.exposure * self.resolution

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "score": self.score}


def face_box(image: np.ndarray, mode: str, face: FaceChoice = "auto") -> Box:
    """Where the face is, by input mode: LFW's known box, the whole aligned crop, or detected
    (``face`` chooses among several; the whole image if none is found: the score then describes the photo)."""
    height, width = image.shape[:2]
    if mode == "lfw-funneled":
        sx, sy = width / LFW_SIZE, height / LFW_SIZE
        box = LFW_FUNNELED_BOX
        return Box(round(box.left * sx), round(box.top * sy), round(box.right * sx), round(box.bottom * sy))
    if mode == "detect":
        boxes = detect_faces(image)
        if boxes:
            return boxes[choose_face(boxes, image.shape, face, "image")[0]]
    return Box(0, 0, width, height)


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    height, width = image.shape[:2]
    left, top = max(box.left, 0), max(box.top, 0)
    right, bottom = min(box.right, width), min(box.bottom, height)
    if right - left < 2 or bottom - top < 2:
        return image
    return image[top:bottom, left:right]


def image_quality(image: np.ndarray, mode: str = "aligned", face: FaceChoice = "auto") -> ImageQuality:
    """The quality parts of a uint8 RGB image whose face is found as ``mode`` (and ``face``) say."""
    region = _crop(image, face_box(image, mode, face))
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
    native_side = min(grey.shape)
    interpolation = cv2.INTER_AREA if native_side > MEASURE_SIZE else cv2.INTER_LINEAR
    patch = cv2.resize(grey, (MEASURE_SIZE, MEASURE_SIZE), interpolation=interpolation).astype(np.float64)
    laplacian_energy = cv2.Laplacian(patch, cv2.CV_64F).var() / (patch.var() + 1.0)
    clipped = float(np.mean((patch <= CLIP_LOW) | (patch >= CLIP_HIGH)))
    return ImageQuality(
        sharpness=float(1.0 - np.exp(-laplacian_energy / SHARPNESS_SCALE)),
        contrast=float(min(1.0, patch.std() / FULL_CONTRAST)),
        exposure=float((1.0 - ((patch.mean() - 128.0) / 128.0) ** 2) * (1.0 - clipped)),
        resolution=float(min(1.0, native_side / MEASURE_SIZE)),
    )
