"""Pairs uploaded to the web platform (``web_uploads``): the verification's facts as JSON, the
photos and aligned faces as one blob, and the X-Maps once computed; the newest few are kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from xfv.store.models import WebUpload


def add_upload(session: Session, upload_id: str, model: str, facts: dict[str, Any], photos: bytes, keep: int) -> None:
    """Store a new upload and drop the oldest beyond the newest ``keep``."""
    session.add(WebUpload(id=upload_id, model=model, facts=facts, photos=photos))
    session.flush()
    oldest = session.scalar(select(WebUpload.created_at).order_by(WebUpload.created_at.desc()).offset(keep).limit(1))
    if oldest is not None:
        session.execute(delete(WebUpload).where(WebUpload.created_at <= oldest))


@dataclass(frozen=True)
class UploadFacts:
    """An upload's model and facts, and whether its X-Maps are stored (blobs are read apart)."""

    model: str
    facts: dict[str, Any]
    has_maps: bool


def upload_facts(session: Session, upload_id: str) -> UploadFacts | None:
    """The facts of an upload, None if the store does not keep it (or never had it)."""
    row = session.execute(
        select(WebUpload.model, WebUpload.facts, WebUpload.maps.is_not(None)).where(WebUpload.id == upload_id)
    ).first()
    return None if row is None else UploadFacts(row[0], row[1], bool(row[2]))


def upload_photos(session: Session, upload_id: str) -> bytes | None:
    """The photos blob of an upload."""
    return session.scalar(select(WebUpload.photos).where(WebUpload.id == upload_id))


def upload_maps(session: Session, upload_id: str) -> bytes | None:
    """The X-Maps blob of an upload, None until computed."""
    return session.scalar(select(WebUpload.maps).where(WebUpload.id == upload_id))


def set_upload_maps(session: Session, upload_id: str, maps: bytes) -> None:
    """Store the computed X-Maps of an upload."""
    session.execute(update(WebUpload).where(WebUpload.id == upload_id).values(maps=maps))
