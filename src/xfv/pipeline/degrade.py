"""XQLFW pairs on synthetically degraded LFW images: the recipe, and the resumable job that writes them.

XQLFW (Knoche, Hoermann, Rigoll, FG 2021) re-pairs LFW so that the two images of a pair differ
much in quality, degrading images synthetically "when necessary" (down-scaling by factors such as
2, 4 and 8); which images and how was not published. xfv's own recipe (``RECIPE_VERSION``):

1. **Which image of a pair is the poor one.** The pair list is a graph on its 7,263 images; it is
   nearly bipartite, so every image is given a side (``low`` or ``high``) by a 2-colouring: breadth
   first per connected component, then single images moved to the other side while that makes
   more pairs cross sides. Within a component the side of lower mean source quality becomes
   ``low``. On the official list 98% of the pairs then join a ``low`` and a ``high`` image.
2. **High side:** LFW's file, byte for byte (``kept``).
3. **Low side:** an image already poor (quality under ``POOR_QUALITY``) stays as it is
   (``kept-poor``); every other one is degraded as a low-resolution camera would see it: Gaussian
   blur (optics; sigma = s x f, s in [0.2, 0.8]), down-scaling by f in {2, 4, 8} (box filter: 250
   px becomes 125, 62 or 31 px), Gaussian sensor noise (sigma 1-6 grey levels), JPEG at the low
   resolution (quality 25-75), then up-scaling back to the original size (bicubic), so the tree
   keeps LFW's shape and the face stays where LFW's deep-funneled images put it.

Every draw comes from SHA-256 of (recipe, seed, image path), and the noise from a PCG64 stream
seeded the same way, so an image's bytes depend only on the seed, its name, its source and its
side (itself a function of the pair list and the source qualities), never on the order or the
process that makes it. Pillow's JPEG encoder is pinned (quality, 4:4:4, no optimisation, no
metadata); the manifest records the Pillow and libjpeg-turbo versions that wrote the bytes.

Writing is atomic per file (a ``.partial`` file, then a rename) and journalled: an interrupted
run continues where it stopped and leaves no partial image; a finished run writes the manifest
last and removes the journal; running again verifies every file and changes nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import PIL
from PIL import Image, ImageFilter, features
from tqdm import tqdm

from xfv.cache import content_hash
from xfv.datasets import PairList, xqlfw_synth
from xfv.datasets.readers import lfw_images_folder, read_lfw_pairs
from xfv.datasets.xqlfw_synth import TreeHeader
from xfv.errors import DatasetError, XfvError
from xfv.faces import decode_image
from xfv.faces.quality import image_quality
from xfv.pipeline.quality import image_qualities

#: Bump whenever a change here changes any output byte.
RECIPE_VERSION = 1
#: Down-scaling factors, drawn with equal probability.
SCALES = (2, 4, 8)
#: Blur sigma per unit of down-scaling factor, in source pixels.
BLUR_PER_SCALE = (0.2, 0.8)
#: Sensor noise sigma in grey levels, at the low resolution.
NOISE_SIGMA = (1.0, 6.0)
#: JPEG quality at the low resolution.
LOW_JPEG_QUALITY = (25, 75)
#: The written file: JPEG at this quality, 4:4:4, baseline, no metadata.
OUTPUT_JPEG_QUALITY = 95
#: A low-side image of a quality under this is poor already and stays as it is (about 2% of LFW).
POOR_QUALITY = 0.35
#: Suffix of a file being written; such files are removed when a run starts.
PARTIAL_SUFFIX = ".partial"


# --- the recipe ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Degradation:
    """What happens to one image: ``kept``, ``kept-poor`` or ``degraded`` with its parameters."""

    action: str
    scale: int = 1
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 0


def _draw(seed: int, name: str, what: str) -> float:
    """A uniform number in [0, 1) from SHA-256 of (recipe, seed, image name, what is drawn)."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}:{seed}:{name}:{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _within(low: float, high: float, u: float) -> float:
    return round(low + (high - low) * u, 4)


def draw_degradation(seed: int, name: str, side: str, quality: float) -> Degradation:
    """The degradation of image ``name`` on ``side`` (``low`` or ``high``) of source ``quality``."""
    if side == "high":
        return Degradation("kept")
    if quality < POOR_QUALITY:
        return Degradation("kept-poor")
    scale = SCALES[min(int(_draw(seed, name, "scale") * len(SCALES)), len(SCALES) - 1)]
    return Degradation(
        "degraded",
        scale=scale,
        blur_sigma=round(scale * _within(*BLUR_PER_SCALE, _draw(seed, name, "blur")), 4),
        noise_sigma=_within(*NOISE_SIGMA, _draw(seed, name, "noise")),
        jpeg_quality=int(
            LOW_JPEG_QUALITY[0] + (LOW_JPEG_QUALITY[1] - LOW_JPEG_QUALITY[0] + 1) * _draw(seed, name, "jpeg")
        ),
    )


def _gaussian_noise(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal noise from a PCG64 stream seeded by (recipe, seed, name), by Box-Muller on
    the raw 64-bit outputs (NumPy keeps bit streams stable; its distribution methods may change)."""
    key = int.from_bytes(hashlib.sha256(f"{RECIPE_VERSION}:{seed}:{name}:noise".encode()).digest()[:16], "big")
    count = int(np.prod(shape))
    raw = np.random.PCG64(key).random_raw(2 * ((count + 1) // 2))
    uniform = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    first, second = uniform[0::2], uniform[1::2]
    radius = np.sqrt(-2.0 * np.log(first))
    normal = np.concatenate([radius * np.cos(2 * np.pi * second), radius * np.sin(2 * np.pi * second)])
    return normal[:count].reshape(shape)


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    """JPEG with every setting that changes bytes pinned."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=False, progressive=False)
    return buffer.getvalue()


def degrade(source: Image.Image, degradation: Degradation, seed: int, name: str) -> bytes:
    """The JPEG bytes of ``source`` (RGB) degraded as ``degradation`` says (seeded noise)."""
    width, height = source.size
    image = source.filter(ImageFilter.GaussianBlur(degradation.blur_sigma)) if degradation.blur_sigma else source
    small = (max(1, width // degradation.scale), max(1, height // degradation.scale))
    image = image.resize(small, Image.Resampling.BOX)
    pixels = np.asarray(image, dtype=np.float64)
    noisy = pixels + degradation.noise_sigma * _gaussian_noise(seed, name, pixels.shape)
    image = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")
    with Image.open(io.BytesIO(_jpeg_bytes(image, degradation.jpeg_quality))) as compressed:
        image = compressed.convert("RGB")
    return _jpeg_bytes(image.resize((width, height), Image.Resampling.BICUBIC), OUTPUT_JPEG_QUALITY)


# --- which image of a pair is the poor one -------------------------------------------------------


def assign_sides(edges: list[tuple[str, str]], quality: dict[str, float], seed: int) -> dict[str, str]:
    """``low`` or ``high`` for every image, so that as many pairs as possible join one of each
    (2-colouring, then single moves), the lower-quality side of each component being ``low``."""
    neighbours: dict[str, list[str]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    order = sorted(neighbours, key=lambda name: (_draw(seed, name, "order"), name))
    colour: dict[str, int] = {}
    components: list[list[str]] = []
    for start in order:
        if start in colour:
            continue
        colour[start], queue, members = 0, deque([start]), []
        while queue:
            node = queue.popleft()
            members.append(node)
            for other in neighbours[node]:
                if other not in colour:
                    colour[other] = 1 - colour[node]
                    queue.append(other)
        components.append(members)
    moved = True
    while moved:  # each move makes more pairs cross sides, so this ends
        moved = False
        for node in order:
            same = sum(colour[other] == colour[node] for other in neighbours[node])
            if 2 * same > len(neighbours[node]):
                colour[node], moved = 1 - colour[node], True
    sides: dict[str, str] = {}
    for members in components:
        mean = [np.mean([quality[m] for m in members if colour[m] == c] or [1.0]) for c in (0, 1)]
        low = 0 if mean[0] <= mean[1] else 1
        sides.update((m, "low" if colour[m] == low else "high") for m in members)
    return sides


# --- the job -------------------------------------------------------------------------------------


@dataclass
class ImageRecord:
    """One image of the tree, as the manifest lists it."""

    path: str
    source_sha256: str
    side: str
    degradation: Degradation
    quality_before: float
    quality_after: float
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("degradation"))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        fields = {name: data[name] for name in Degradation.__dataclass_fields__}
        return cls(
            str(data["path"]),
            str(data["source_sha256"]),
            str(data["side"]),
            Degradation(**fields),
            float(data["quality_before"]),
            float(data["quality_after"]),
            str(data["sha256"]),
        )


@dataclass(frozen=True)
class SynthReport:
    """What a run did: the tree, its header, how many images it wrote now and the manifest's summary."""

    out: Path
    header: TreeHeader
    written: int
    summary: dict[str, Any] = field(default_factory=dict)


def _atomic_write(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a ``.partial`` file and a rename: all or nothing. Images
    need no fsync (a record whose file does not hash right is made again); the manifest gets one."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    with open(partial, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(partial, path)


def _relative(path: Path, images: Path) -> str:
    return f"{xqlfw_synth.IMAGES_FOLDER}/{path.relative_to(images).as_posix()}"


def _check_header(found: TreeHeader, wanted: TreeHeader, out: Path) -> None:
    if found == wanted:
        return
    what = f"seed {found.seed}"
    if found.pairs_sha256 != wanted.pairs_sha256:
        what = "another pair list"
    if found.recipe != wanted.recipe:
        what = f"recipe {found.recipe} (this xfv writes recipe {wanted.recipe})"
    raise XfvError(
        f"{out}: holds xqlfw-synth images of {what}, not seed {wanted.seed} of this pair list; use another --out "
        "or remove that folder"
    )


def _check_location(out: Path, lfw_root: Path) -> None:
    if out == lfw_root or lfw_root in out.parents or out in lfw_root.parents:
        raise XfvError(f"{out}: the output folder must lie outside the LFW folder {lfw_root}, and not hold it")
    if out.exists() and not out.is_dir():
        raise XfvError(f"{out}: exists and is not a folder")


def _previous_records(out: Path, header: TreeHeader) -> dict[str, ImageRecord]:
    """The images an earlier run of the same seed, recipe and pair list recorded in ``out`` (its
    manifest, then its journal); a clear error if ``out`` holds anything else."""
    manifest, journal = out / xqlfw_synth.MANIFEST_FILE, out / xqlfw_synth.JOURNAL_FILE
    if journal.is_file() and not journal.read_bytes().strip():
        journal.unlink()  # a run killed before it wrote its first line
    if not manifest.is_file() and not journal.is_file():
        if any(out.iterdir()):
            raise XfvError(f"{out}: not empty and holds no make-xqlfw-synth data; use a new or empty folder")
        return {}
    records: list[Any] = []
    if manifest.is_file():
        data = _read_json(manifest.read_text(encoding="utf-8"), manifest)
        _check_header(TreeHeader.from_dict(data, manifest), header, out)
        records += data.get("images", [])
    if journal.is_file():
        first, *lines = journal.read_text(encoding="utf-8").splitlines()
        _check_header(TreeHeader.from_dict(_read_json(first, journal), journal), header, out)
        for line in lines:
            with suppress(json.JSONDecodeError):  # the last line of a killed run may be cut short
                records.append(json.loads(line))
    found = {}
    for record in records:
        with suppress(KeyError, TypeError, ValueError):  # an unusable record: that image is made again
            parsed = ImageRecord.from_dict(record)
            found[parsed.path] = parsed
    return found


def _read_json(text: str, source: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise XfvError(f"{source}: unreadable; remove {source.parent} and run again") from None


@contextmanager
def _journal(out: Path, header: TreeHeader) -> Iterator[IO[str]]:
    """The journal, opened for appending (its first line: the header)."""
    path = out / xqlfw_synth.JOURNAL_FILE
    fresh = not path.is_file()
    with open(path, "a", encoding="utf-8") as handle:
        if fresh:
            handle.write(json.dumps(header.to_dict()) + "\n")
            handle.flush()
        yield handle


def _summary(records: list[ImageRecord], edges: list[tuple[str, str]]) -> dict[str, Any]:
    """Counts per action and scale, mean quality, and the pairs' quality gap before and after."""
    by_path = {record.path: record for record in records}
    actions = [record.degradation.action for record in records]
    scales = [record.degradation.scale for record in records if record.degradation.action == "degraded"]

    def gap(attribute: str) -> float:
        return float(np.mean([abs(getattr(by_path[a], attribute) - getattr(by_path[b], attribute)) for a, b in edges]))

    return {
        "images": len(records),
        "pairs": len(edges),
        "actions": {action: actions.count(action) for action in ("kept", "kept-poor", "degraded")},
        "scales": {str(scale): scales.count(scale) for scale in SCALES},
        "pairs_across_sides": sum(by_path[a].side != by_path[b].side for a, b in edges),
        "mean_quality_before": float(np.mean([r.quality_before for r in records])),
        "mean_quality_after": float(np.mean([r.quality_after for r in records])),
        "mean_pair_quality_gap_before": gap("quality_before"),
        "mean_pair_quality_gap_after": gap("quality_after"),
    }


@dataclass(frozen=True)
class Plan:
    """Every image of the tree (path under the tree -> LFW source), its source's hash and quality,
    its side and its degradation, and the pairs as (path, path)."""

    sources: dict[str, Path]
    source_hashes: dict[str, str]
    quality: dict[str, float]
    sides: dict[str, str]
    degradations: dict[str, Degradation]
    edges: list[tuple[str, str]]


def _plan(pairs: PairList, images: Path, seed: int, progress: bool) -> Plan:
    """What the tree of ``pairs`` holds for ``seed``: a function of the inputs only."""
    sources = {_relative(path, images): path for path in pairs.unique_images()}
    names = list(sources)
    quality = dict(
        zip(names, image_qualities(list(sources.values()), xqlfw_synth.INPUT_MODE, progress=progress).tolist())
    )
    edges = [(_relative(p.image1, images), _relative(p.image2, images)) for p in pairs.pairs]
    sides = assign_sides(edges, quality, seed)
    return Plan(
        sources,
        {name: content_hash(path.read_bytes()) for name, path in sources.items()},
        quality,
        sides,
        {name: draw_degradation(seed, name, sides[name], quality[name]) for name in names},
        edges,
    )


def _read_inputs(lfw_root: Path, pairs_file: Path) -> tuple[Path, PairList]:
    """LFW's image folder and the pair list on it; every image the list names must be there."""
    if not lfw_root.is_dir():
        raise DatasetError(f"{lfw_root}: LFW folder not found")
    images = lfw_images_folder(lfw_root)
    pairs = read_lfw_pairs(pairs_file, images, "xqlfw")
    missing = [path for path in pairs.unique_images() if not path.is_file()]
    if missing:
        shown = ", ".join(str(path.relative_to(images)) for path in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DatasetError(f"{len(missing)} image(s) of {pairs_file} are missing under {images}: {shown}")
    return images, pairs


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """``out`` (created if new) locked for this run alone, so two runs never clean up each other's files."""
    out.mkdir(parents=True, exist_ok=True)
    folder = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise XfvError(f"{out}: another make-xqlfw-synth run is writing this folder") from None
        yield
    finally:
        os.close(folder)


def make_xqlfw_synth(lfw_root: Path, pairs_file: Path, out: Path, seed: int = 0, progress: bool = True) -> SynthReport:
    """Write (or finish, or verify) the tree of XQLFW pairs on LFW images degraded with ``seed``."""
    lfw_root, out = Path(lfw_root).expanduser().resolve(), Path(out).expanduser().resolve()
    images, pairs = _read_inputs(lfw_root, Path(pairs_file))
    pairs_bytes = Path(pairs_file).read_bytes()
    header = TreeHeader(seed, RECIPE_VERSION, content_hash(pairs_bytes))
    _check_location(out, lfw_root)
    with _exclusive(out):
        done = _previous_records(out, header)
        for partial in out.rglob(f"*{PARTIAL_SUFFIX}"):
            partial.unlink()  # cut short by a killed run
        plan = _plan(pairs, images, seed, progress)
        todo = [name for name in plan.sources if not _finished(done.get(name), out / name, plan, name)]
        pairs_target = out / xqlfw_synth.PAIRS_FILE
        pairs_in_place = pairs_target.is_file() and pairs_target.read_bytes() == pairs_bytes
        if not todo and pairs_in_place and (out / xqlfw_synth.MANIFEST_FILE).is_file():
            return SynthReport(out, header, 0, _summary([done[name] for name in plan.sources], plan.edges))
        with _journal(out, header) as journal:
            if not pairs_in_place:
                _atomic_write(pairs_target, pairs_bytes)
            for name in tqdm(todo, desc=f"degrading (seed {seed})", unit="img", disable=not progress):
                done[name] = _make_image(plan, name, out / name, seed)
                journal.write(json.dumps(done[name].to_dict()) + "\n")
                journal.flush()
        records = [done[name] for name in sorted(plan.sources)]
        summary = _summary(records, plan.edges)
        manifest = {
            **header.to_dict(),
            "dataset": xqlfw_synth.DATASET_NAME,
            "description": header.describe(),
            "pairs_file": xqlfw_synth.PAIRS_FILE,
            "input_mode": xqlfw_synth.INPUT_MODE,
            "writer": {"pillow": PIL.__version__, "libjpeg_turbo": features.version("libjpeg_turbo")},
            "summary": summary,
            "images": [record.to_dict() for record in records],
        }
        _atomic_write(out / xqlfw_synth.MANIFEST_FILE, (json.dumps(manifest, indent=1) + "\n").encode(), durable=True)
        (out / xqlfw_synth.JOURNAL_FILE).unlink()
    return SynthReport(out, header, len(todo), summary)


def _finished(record: ImageRecord | None, target: Path, plan: Plan, name: str) -> bool:
    """Whether an earlier run wrote this image as the plan says, and the file is still what it wrote."""
    return (
        record is not None
        and record.degradation == plan.degradations[name]
        and record.side == plan.sides[name]
        and record.source_sha256 == plan.source_hashes[name]
        and target.is_file()
        and content_hash(target.read_bytes()) == record.sha256
    )


def _make_image(plan: Plan, name: str, target: Path, seed: int) -> ImageRecord:
    """Write one image of the tree (atomically) and return its manifest record."""
    data = plan.sources[name].read_bytes()
    degradation = plan.degradations[name]
    quality_after = plan.quality[name]
    if degradation.action == "degraded":
        with Image.open(io.BytesIO(data)) as image:
            data = degrade(image.convert("RGB"), degradation, seed, name)
        quality_after = image_quality(decode_image(data, name), xqlfw_synth.INPUT_MODE).score
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, data)
    return ImageRecord(
        name,
        plan.source_hashes[name],
        plan.sides[name],
        degradation,
        plan.quality[name],
        quality_after,
        content_hash(data),
    )
