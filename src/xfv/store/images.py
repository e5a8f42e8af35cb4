"""Image files of the store: an ``images`` row's file under its dataset's root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from xfv.errors import NotFoundError
from xfv.store.models import Dataset, Image


@dataclass(frozen=True)
class ImageFile:
    """A stored image's file on disk and what aligning it needs."""

    path: Path
    input_mode: str
    content_hash: str


def image_file(session: Session, image_id: int) -> ImageFile:
    """The file of a registered image; only paths inside their dataset's root are ever returned."""
    row = session.execute(
        select(Image.path, Image.content_hash, Dataset.root, Dataset.input_mode)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.id == image_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no image with id {image_id} in the store")
    relative, content_hash, root, input_mode = row
    root_path = Path(root).resolve()
    path = (root_path / relative).resolve()
    if not path.is_relative_to(root_path) or not path.is_file():
        raise NotFoundError(f"image {image_id} is not on disk under its dataset's root")
    return ImageFile(path, input_mode, content_hash)
