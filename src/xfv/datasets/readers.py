"""Readers for LFW and its derivatives (CALFW, CPLFW, SLLFW, XQLFW).

Every reader returns a :class:`PairList`; a malformed file raises ``DatasetError`` naming the
file, the line and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from xfv.datasets import xqlfw_synth
from xfv.datasets.pairs import Pair, PairList
from xfv.errors import DatasetError

N_FOLDS = 10


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-empty lines with 1-based numbers; handles CRLF endings and a UTF-8 BOM."""
    if not path.is_file():
        raise DatasetError(f"{path}: protocol file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file ({exc.reason})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def _image_index(path: Path, number: int, value: str) -> int:
    if not value.isdigit():
        raise DatasetError(f"{path}:{number}: image number {value!r} is not a positive integer")
    return int(value)


def read_lfw_pairs(pairs_file: Path, images_dir: Path, name: str = "lfw") -> PairList:
    """LFW ``pairs.txt``: header ``folds n``, then per fold n genuine ``name i j`` and n impostor
    ``name1 i name2 j`` lines; images at ``images_dir/name/name_%04d.jpg``."""
    lines = list(_lines(pairs_file))
    if not lines:
        raise DatasetError(f"{pairs_file}: empty pairs file")
    header_number, header = lines[0]
    header_fields = header.split()
    if len(header_fields) != 2 or not all(f.isdigit() for f in header_fields):
        raise DatasetError(f"{pairs_file}:{header_number}: expected a header 'FOLDS PAIRS_PER_CLASS', got {header!r}")
    n_folds, per_class = (int(f) for f in header_fields)
    pairs = []
    for index, (number, line) in enumerate(lines[1:]):
        fields = line.split()
        fold = index // (2 * per_class)
        if len(fields) == 3:
            person, i, j = fields
            first, second = (person, _image_index(pairs_file, number, i)), (person, _image_index(pairs_file, number, j))
        elif len(fields) == 4:
            first = (fields[0], _image_index(pairs_file, number, fields[1]))
            second = (fields[2], _image_index(pairs_file, number, fields[3]))
        else:
            raise DatasetError(
                f"{pairs_file}:{number}: expected 'name i j' or 'name1 i name2 j', got {len(fields)} fields"
            )
        genuine_expected = index % (2 * per_class) < per_class
        if (len(fields) == 3) != genuine_expected:
            kind = "a genuine" if genuine_expected else "an impostor"
            raise DatasetError(f"{pairs_file}:{number}: expected {kind} pair at this position of fold {fold + 1}")
        pairs.append(
            Pair(
                image1=images_dir / first[0] / f"{first[0]}_{first[1]:04d}.jpg",
                image2=images_dir / second[0] / f"{second[0]}_{second[1]:04d}.jpg",
                identity1=first[0],
                identity2=second[0],
                same=len(fields) == 3,
                fold=fold,
            )
        )
    expected = n_folds * 2 * per_class
    if len(pairs) != expected:
        raise DatasetError(
            f"{pairs_file}: header says {n_folds} folds x 2 x {per_class} = {expected} pairs, file has {len(pairs)}"
        )
    return PairList(name, pairs_file.parent, pairs)


_NUMBERED_IMAGE = re.compile(r"^(?P<identity>.+)_(?P<number>\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def read_two_line_pairs(pairs_file: Path, images_dir: Path, name: str) -> PairList:
    """CALFW/CPLFW lists: two lines ``Name_N.jpg label`` per pair (label 1 genuine, 0 or other
    non-positive impostor), an optional header line; class-balanced folds."""
    lines = list(_lines(pairs_file))
    if lines and not lines[0][1].split()[-1].lstrip("-").isdigit():
        lines = lines[1:]  # header such as "name same_person"
    if len(lines) % 2:
        raise DatasetError(f"{pairs_file}: odd number of image lines ({len(lines)}); pairs take two lines each")
    entries = []
    for number, line in lines:
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise DatasetError(f"{pairs_file}:{number}: expected 'IMAGE LABEL', got {line!r}")
        match = _NUMBERED_IMAGE.match(Path(fields[0]).name)
        if match is None:
            raise DatasetError(f"{pairs_file}:{number}: image name {fields[0]!r} is not 'Name_N.jpg'")
        entries.append((number, fields[0], match["identity"], int(fields[1])))
    pairs = []
    for index in range(len(entries) // 2):
        (number, image1, identity1, label1), (_, image2, identity2, label2) = entries[2 * index : 2 * index + 2]
        if (label1 > 0) != (label2 > 0):
            raise DatasetError(f"{pairs_file}:{number}: the two lines of a pair disagree on the label")
        pairs.append(Pair(images_dir / image1, images_dir / image2, identity1, identity2, label1 > 0, 0))
    return PairList(name, pairs_file.parent, _class_balanced_folds(pairs_file, pairs))


def _class_balanced_folds(pairs_file: Path, pairs: list[Pair]) -> list[Pair]:
    """Fold k holds the k-th tenth of the genuine and the k-th tenth of the impostor pairs (in
    file order), so a file listing all genuine pairs first still gets 300 + 300 pairs per fold."""
    genuine = [p for p in pairs if p.same]
    impostor = [p for p in pairs if not p.same]
    for kind, group in (("genuine", genuine), ("impostor", impostor)):
        if len(group) < N_FOLDS or len(group) % N_FOLDS:
            raise DatasetError(f"{pairs_file}: {len(group)} {kind} pairs cannot be split into {N_FOLDS} equal folds")
    fold_of = {id(p): i * N_FOLDS // len(group) for group in (genuine, impostor) for i, p in enumerate(group)}
    return [Pair(p.image1, p.image2, p.identity1, p.identity2, p.same, fold_of[id(p)]) for p in pairs]


def read_path_pairs(pairs_file: Path, images_dir: Path, name: str) -> PairList:
    """SLLFW-style lists: ``name/name_NNNN.jpg name/name_NNNN.jpg [label]`` per line; without a
    label the identities decide; class-balanced folds."""
    pairs = []
    for number, line in _lines(pairs_file):
        fields = line.split()
        if len(fields) not in (2, 3):
            raise DatasetError(f"{pairs_file}:{number}: expected 'IMAGE1 IMAGE2 [LABEL]', got {line!r}")
        identities = []
        for field in fields[:2]:
            match = _NUMBERED_IMAGE.match(Path(field).name)
            if match is None:
                raise DatasetError(f"{pairs_file}:{number}: image name {field!r} is not 'Name_NNNN.jpg'")
            identities.append(match["identity"])
        if len(fields) == 3 and not fields[2].lstrip("-").isdigit():
            raise DatasetError(f"{pairs_file}:{number}: label {fields[2]!r} is not an integer")
        same = int(fields[2]) > 0 if len(fields) == 3 else identities[0] == identities[1]
        pairs.append(Pair(images_dir / fields[0], images_dir / fields[1], identities[0], identities[1], same, 0))
    return PairList(name, pairs_file.parent, _class_balanced_folds(pairs_file, pairs))


def _first_existing(root: Path, candidates: tuple[str, ...], what: str) -> Path:
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    raise DatasetError(f"{root}: no {what} found (looked for {', '.join(candidates)})")


#: Where LFW's images may be under its root, in order of preference.
LFW_IMAGE_FOLDERS = ("images_deepfunneled", "lfw-deepfunneled", "lfw_funneled", "lfw", "images")


def lfw_images_folder(root: Path) -> Path:
    """The folder of LFW's ``Name/Name_NNNN.jpg`` images under an LFW root."""
    return _first_existing(root, LFW_IMAGE_FOLDERS, "image folder")


def _read_lfw(root: Path) -> PairList:
    images = lfw_images_folder(root)
    return read_lfw_pairs(_first_existing(root, ("pairs.txt",), "pairs file"), images, "lfw")


def _read_calfw(root: Path) -> PairList:
    pairs_file = _first_existing(root, ("pairs_CALFW.txt", "pairs_CALFW_with_header.txt"), "pairs file")
    return read_two_line_pairs(pairs_file, _first_existing(root, ("aligned images", "images"), "image folder"), "calfw")


def _read_cplfw(root: Path) -> PairList:
    pairs_file = _first_existing(root, ("pairs_CPLFW.txt", "pairs_CPLFW_with_header.txt"), "pairs file")
    images = root / "aligned images" if (root / "aligned images").exists() else root / "images"
    return read_two_line_pairs(pairs_file, images, "cplfw")


def _read_sllfw(root: Path) -> PairList:
    pairs_file = _first_existing(root, ("pair_SLLFW.txt", "pairs_SLLFW.txt", "sllfw_pairs.txt"), "pairs file")
    return read_path_pairs(
        pairs_file, _first_existing(root, ("images_deepfunneled", "lfw", "images"), "image folder"), "sllfw"
    )


def fold_overlap_note(pairs: PairList) -> str:
    """The caveat of a pair list whose folds are not identity-disjoint (empty if they are)."""
    folds_of: dict[str, set[int]] = {}
    for pair in pairs.pairs:
        for identity in (pair.identity1, pair.identity2):
            folds_of.setdefault(identity, set()).add(pair.fold)
    shared = sum(1 for folds in folds_of.values() if len(folds) > 1)
    if not shared:
        return ""
    return (
        f"folds as the pairs file gives them, not identity-disjoint: {shared:,} of {len(folds_of):,} identities "
        "appear in more than one fold, so a fold's threshold and calibration were fitted on some of its people"
    )


def _read_xqlfw(root: Path) -> PairList:
    """The official XQLFW (aligned 112x112 faces), or XQLFW pairs on images degraded by
    ``xfv make-xqlfw-synth`` (recognised by its manifest; see :mod:`xfv.datasets.xqlfw_synth`)."""
    if xqlfw_synth.is_synthetic_tree(root):
        header = xqlfw_synth.TreeHeader.from_dict(xqlfw_synth.read_manifest(root), root / xqlfw_synth.MANIFEST_FILE)
        pairs = read_lfw_pairs(
            root / xqlfw_synth.PAIRS_FILE, root / xqlfw_synth.IMAGES_FOLDER, xqlfw_synth.DATASET_NAME
        )
        pairs = replace(pairs, input_mode=xqlfw_synth.INPUT_MODE, notes=(header.describe(),))
    else:
        pairs_file = _first_existing(root, ("xqlfw_pairs.txt", "pairs.txt"), "pairs file")
        images = _first_existing(root, ("xqlfw_aligned_112", "lfw_xqlfw_aligned_112", "images"), "image folder")
        pairs = read_lfw_pairs(pairs_file, images, "xqlfw")
    note = fold_overlap_note(pairs)
    return replace(pairs, notes=(*pairs.notes, note)) if note else pairs


@dataclass(frozen=True)
class Protocol:
    """A benchmark protocol: its name, the reader of its dataset root, and the input mode its images need."""

    name: str
    read: Callable[[Path], PairList]
    input_mode: str
    description: str
    #: What a reader of results on it must know (shown beside it on the landing page).
    caveat: str = ""


#: The protocols by name; the CLI's choices, ingest and evaluation read them here. XQLFW, CALFW and
#: CPLFW ship aligned faces (a tree made by ``xfv make-xqlfw-synth`` holds LFW-shaped images: its
#: pair list says so in its ``input_mode``).
PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol("lfw", _read_lfw, "lfw-funneled", "Labeled Faces in the Wild, 6,000 pairs"),
        Protocol("calfw", _read_calfw, "aligned", "Cross-Age LFW"),
        Protocol("cplfw", _read_cplfw, "aligned", "Cross-Pose LFW"),
        Protocol("sllfw", _read_sllfw, "lfw-funneled", "Similar-Looking LFW"),
        Protocol(
            "xqlfw",
            _read_xqlfw,
            "aligned",
            "Cross-Quality LFW, or its pairs on LFW degraded by `xfv make-xqlfw-synth`",
            "folds as the pairs file gives them: not identity-disjoint",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name``; :class:`DatasetError` naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def read_protocol(protocol: str, root: Path | str) -> PairList:
    """Read a benchmark's pair list from its dataset root."""
    reader = get_protocol(protocol).read
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    return reader(root)


def pairs_input_mode(pairs: PairList, protocol: str) -> str:
    """How the faces of ``pairs`` are found: the reader's word for this tree, else the protocol's usual mode."""
    return pairs.input_mode or get_protocol(protocol).input_mode
