"""X-Maps of stored pairs: ``xmap_results`` per pair x model x method x occlusion setting
(``occlusion_settings``), the maps packed by :mod:`xfv.store.arrays`.

Maps are kept per method, so a method added to :data:`~xfv.method.xmaps.XMAP_METHODS` is computed
alone for the pairs that have the others (:func:`missing_xmap_methods`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from xfv.errors import NotFoundError
from xfv.method.occlusion import OcclusionSettings
from xfv.store.arrays import unpack_maps
from xfv.store.models import Model, OcclusionSetting, XMapResult


def occlusion_setting(session: Session, settings: OcclusionSettings) -> OcclusionSetting:
    """The row for an occlusion configuration, added on first use."""
    key = settings.cache_key()
    row = session.scalar(select(OcclusionSetting).where(OcclusionSetting.key == key))
    if row is None:
        params = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
        row = OcclusionSetting(key=key, params=json.loads(json.dumps(params)))
        session.add(row)
        session.flush()
    return row


#: Up to this many pair ids go into an SQL ``IN``; beyond, all rows of the model and setting are read.
FEW_PAIRS = 500


def missing_xmap_methods(
    session: Session, model: Model, setting_key: str, pair_ids: Iterable[int], methods: Sequence[int]
) -> dict[int, tuple[int, ...]]:
    """Per pair of ``pair_ids``, those of ``methods`` without stored X-Maps of ``model`` under the
    occlusion setting ``setting_key`` (pairs with all of them stored are left out), so adding a
    method asks for that method only."""
    ids = list(pair_ids)
    query = (
        select(XMapResult.pair_id, XMapResult.method)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(XMapResult.model_id == model.id, OcclusionSetting.key == setting_key)
    )
    if len(ids) <= FEW_PAIRS:
        query = query.where(XMapResult.pair_id.in_(ids))
    stored: dict[int, set[int]] = {}
    for pair_id, method in session.execute(query):
        stored.setdefault(pair_id, set()).add(method)
    missing = {pair_id: tuple(m for m in methods if m not in stored.get(pair_id, ())) for pair_id in ids}
    return {pair_id: todo for pair_id, todo in missing.items() if todo}


@dataclass(frozen=True)
class XMapRecord:
    """One pair's X-Maps of one method, as a compute worker returns them."""

    pair_id: int
    method: int
    distance: float
    forward_passes: int
    maps: bytes


def add_xmaps(session: Session, model: Model, setting: OcclusionSetting, records: Sequence[XMapRecord]) -> None:
    """Insert the X-Maps of one compute chunk, skipping pair x method rows already stored (an
    earlier run may have computed some of the methods)."""
    pair_ids = sorted({r.pair_id for r in records})
    stored = set(
        session.execute(
            select(XMapResult.pair_id, XMapResult.method).where(
                XMapResult.model_id == model.id, XMapResult.setting_id == setting.id, XMapResult.pair_id.in_(pair_ids)
            )
        )
    )
    rows = [
        {
            "pair_id": r.pair_id,
            "model_id": model.id,
            "setting_id": setting.id,
            "method": r.method,
            "distance": r.distance,
            "forward_passes": r.forward_passes,
            "maps": r.maps,
        }
        for r in records
        if (r.pair_id, r.method) not in stored
    ]
    if rows:
        session.execute(insert(XMapResult), rows)


@dataclass(frozen=True)
class XMapView:
    """Stored X-Maps of a pair for one method and occlusion setting, maps unpacked to float32."""

    method: int
    setting_key: str
    settings: dict[str, Any]
    distance: float
    forward_passes: int
    maps: dict[str, np.ndarray] = field(repr=False)


def pair_xmaps(session: Session, pair_id: int, model: Model, method: int | None = None) -> list[XMapView]:
    """The stored X-Maps of a pair for ``model`` (every method and setting, or one method)."""
    query = (
        select(XMapResult, OcclusionSetting)
        .join(OcclusionSetting, XMapResult.setting_id == OcclusionSetting.id)
        .where(XMapResult.pair_id == pair_id, XMapResult.model_id == model.id)
        .order_by(OcclusionSetting.id, XMapResult.method)
    )
    if method is not None:
        query = query.where(XMapResult.method == method)
    return [
        XMapView(x.method, s.key, s.params, x.distance, x.forward_passes, unpack_maps(x.maps))
        for x, s in session.execute(query)
    ]


@dataclass(frozen=True)
class StoredMaps:
    """X-Maps stored for a pair: one model and occlusion setting, with the methods computed."""

    model: str
    setting: str
    params: dict[str, Any]
    methods: list[int]


def stored_maps(session: Session, pair_id: int) -> list[StoredMaps]:
    """The X-Maps stored for a pair, grouped by model and occlusion setting."""
    query = (
        select(Model.name, OcclusionSetting.key, OcclusionSetting.params, XMapResult.method)
        .join(Model, Model.id == XMapResult.model_id)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(XMapResult.pair_id == pair_id)
        .order_by(Model.name, OcclusionSetting.id, XMapResult.method)
    )
    groups: dict[tuple[str, str], StoredMaps] = {}
    for model, key, params, method in session.execute(query):
        groups.setdefault((model, key), StoredMaps(model, key, params, [])).methods.append(method)
    return list(groups.values())


def xmap_blob(session: Session, pair_id: int, model: str, method: int, setting: str) -> bytes:
    """The packed maps of one pair x model x method x setting, or :class:`NotFoundError`."""
    blob = session.scalar(
        select(XMapResult.maps)
        .join(Model, Model.id == XMapResult.model_id)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(
            XMapResult.pair_id == pair_id,
            Model.name == model,
            XMapResult.method == method,
            OcclusionSetting.key == setting,
        )
    )
    if blob is None:
        raise NotFoundError(
            f"pair {pair_id} has no stored X-Maps of method {method} for model {model!r} and setting {setting!r}"
        )
    return blob
