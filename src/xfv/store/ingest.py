"""Ingest: a benchmark's protocol and images into the store, once.

Everything is checked before anything is written (protocol file readable, every image present and
decodable), and a new dataset is written in one transaction: it appears whole or not at all.
Ingesting a dataset that is already stored verifies it instead (same protocol, root, pairs and
image contents) and changes nothing; a difference is an error, since stored results refer to the
stored pairs and images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from xfv.cache import content_hash
from xfv.datasets import PairList, read_protocol
from xfv.datasets.readers import pairs_input_mode
from xfv.errors import DatasetError
from xfv.faces import INPUT_MODES, decode_image
from xfv.faces.quality import image_quality
from xfv.store.engine import Store
from xfv.store.models import Dataset, Identity, Image, Pair


@dataclass(frozen=True)
class ImageFacts:
    """What the store keeps of an image file."""

    path: str
    identity: str
    width: int
    height: int
    file_size: int
    content_hash: str
    quality: float


@dataclass(frozen=True)
class IngestReport:
    """The dataset after ingest, and whether this run created it."""

    name: str
    protocol: str
    root: str
    input_mode: str
    images: int
    pairs: int
    identities: int
    created: bool


def _relative(path: Path, root: Path) -> str:
    """An image path relative to the dataset root, with forward slashes on every system."""
    try:
        return Path(os.path.normpath(path)).relative_to(root).as_posix()
    except ValueError:
        raise DatasetError(f"{path}: image outside the dataset root {root}") from None


def _image_identities(pairs: PairList, root: Path) -> dict[str, str]:
    """Relative path -> identity of every image, in order of first appearance; an image listed
    under two identities is a protocol error."""
    identities: dict[str, str] = {}
    for pair in pairs.pairs:
        for path, identity in ((pair.image1, pair.identity1), (pair.image2, pair.identity2)):
            relative = _relative(path, root)
            if identities.setdefault(relative, identity) != identity:
                raise DatasetError(f"{relative}: listed as {identities[relative]!r} and as {identity!r}")
    return identities


def _check_present(root: Path, paths: Iterable[str]) -> None:
    missing = [path for path in paths if not (root / path).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DatasetError(f"{len(missing)} image(s) of the protocol are missing under {root}: {shown}")


def read_image_facts(root: Path, path: str, identity: str, input_mode: str) -> ImageFacts:
    """Size, content hash and quality of one image (decoded once; ``ImageError`` if unreadable)."""
    data = (root / path).read_bytes()
    image = decode_image(data, str(root / path))
    return ImageFacts(
        path=path,
        identity=identity,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        file_size=len(data),
        content_hash=content_hash(data),
        quality=image_quality(image, input_mode).score,
    )


def ingest(
    store: Store,
    protocol: str,
    root: Path,
    name: str | None = None,
    input_mode: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """Read ``protocol`` at ``root`` into the store as ``name`` (default: the pair list's own name,
    e.g. ``lfw`` or ``xqlfw-synth``), or verify the stored copy; faces are found as ``input_mode``
    says (default: as the dataset's images need)."""
    if input_mode is not None and input_mode not in INPUT_MODES:
        raise DatasetError(f"unknown input mode {input_mode!r}: use one of {', '.join(INPUT_MODES)}")
    root = Path(root).expanduser().resolve()
    pairs = read_protocol(protocol, root)
    mode = input_mode or pairs_input_mode(pairs, protocol)
    name = name or pairs.name
    identities = _image_identities(pairs, root)
    _check_present(root, identities)
    with store.transaction() as session:
        stored = session.scalar(select(Dataset).where(Dataset.name == name))
        if stored is not None:
            _verify(session, stored, protocol, root, mode, pairs, identities)
            return _report(stored, len(set(identities.values())), created=False)
    facts = [
        read_image_facts(root, path, identity, mode)
        for path, identity in tqdm(identities.items(), desc=f"ingesting {name}", unit="img", disable=not progress)
    ]
    with store.transaction() as session:
        if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            raise DatasetError(f"dataset {name!r} was ingested by another process meanwhile; run the command again")
        dataset = _write(session, name, protocol, root, mode, pairs, facts)
        return _report(dataset, len(set(identities.values())), created=True)


def _report(dataset: Dataset, identities: int, created: bool) -> IngestReport:
    return IngestReport(
        dataset.name,
        dataset.protocol,
        dataset.root,
        dataset.input_mode,
        dataset.image_count,
        dataset.pair_count,
        identities,
        created,
    )


def _write(
    session: Session, name: str, protocol: str, root: Path, mode: str, pairs: PairList, facts: list[ImageFacts]
) -> Dataset:
    """Add the dataset, its identities, images and pairs (the caller's transaction commits)."""
    dataset = Dataset(
        name=name,
        protocol=protocol,
        root=str(root),
        input_mode=mode,
        image_count=len(facts),
        pair_count=len(pairs.pairs),
    )
    session.add(dataset)
    session.flush()
    people = {
        identity: Identity(dataset_id=dataset.id, name=identity)
        for identity in dict.fromkeys(f.identity for f in facts)
    }
    session.add_all(people.values())
    session.flush()
    images = {
        f.path: Image(
            dataset_id=dataset.id,
            identity_id=people[f.identity].id,
            path=f.path,
            width=f.width,
            height=f.height,
            file_size=f.file_size,
            content_hash=f.content_hash,
            quality=f.quality,
        )
        for f in facts
    }
    session.add_all(images.values())
    session.flush()
    session.add_all(
        Pair(
            dataset_id=dataset.id,
            position=position,
            fold=pair.fold,
            same=pair.same,
            image1_id=images[_relative(pair.image1, root)].id,
            image2_id=images[_relative(pair.image2, root)].id,
        )
        for position, pair in enumerate(pairs.pairs)
    )
    session.flush()
    return dataset


def _verify(
    session: Session,
    dataset: Dataset,
    protocol: str,
    root: Path,
    mode: str,
    pairs: PairList,
    identities: dict[str, str],
) -> None:
    """A stored dataset must match what is on disk now: protocol, root, mode, pairs, image bytes."""
    expected = (protocol, str(root), mode)
    if (dataset.protocol, dataset.root, dataset.input_mode) != expected:
        raise DatasetError(
            f"dataset {dataset.name!r} is already stored as protocol {dataset.protocol} at {dataset.root} "
            f"(input mode {dataset.input_mode}); ingest this one under another --name"
        )
    stored_images = dict(
        session.execute(select(Image.path, Image.content_hash).where(Image.dataset_id == dataset.id)).all()
    )
    if set(stored_images) != set(identities):
        raise DatasetError(f"dataset {dataset.name!r}: the protocol now lists other images than the stored ones")
    changed = [path for path, digest in stored_images.items() if content_hash((root / path).read_bytes()) != digest]
    if changed:
        raise DatasetError(
            f"dataset {dataset.name!r}: {len(changed)} image(s) changed on disk since ingest (first: {changed[0]}); "
            "stored results refer to the old images: ingest the new ones under another --name"
        )
    image_path = dict(session.execute(select(Image.id, Image.path).where(Image.dataset_id == dataset.id)).all())
    stored_pairs = [
        (image_path[a], image_path[b], same, fold)
        for a, b, same, fold in session.execute(
            select(Pair.image1_id, Pair.image2_id, Pair.same, Pair.fold)
            .where(Pair.dataset_id == dataset.id)
            .order_by(Pair.position)
        )
    ]
    on_disk = [(_relative(p.image1, root), _relative(p.image2, root), p.same, p.fold) for p in pairs.pairs]
    if stored_pairs != on_disk:
        raise DatasetError(f"dataset {dataset.name!r}: the protocol file's pairs differ from the stored ones")
