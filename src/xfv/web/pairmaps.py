"""X-Maps of stored pairs for the viewer: read from the store, drawn, or computed on request.

Maps are read from ``xmap_results`` (float16, all patch sizes and merged, both images) and drawn
over the aligned faces, which are redrawn from the dataset's images (aligning takes milliseconds;
faces and unpacked maps are kept in small in-memory caches). A map that is not stored is computed
in a background job with the server's occlusion setting, then written to the store like
``xfv compute --xmaps`` does, so the next viewer (or a restarted server) finds it. The job works
progressively, largest patches first: until the final maps are stored, the maps of the levels done
so far are kept in the job's row (``web_jobs.partial``, so any server process serves them to a map
asked for without a setting), and the job's ``info`` says which patch sizes they hold.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xfv.errors import NotFoundError
from xfv.faces import align_face, load_image
from xfv.method.occlusion import OcclusionSettings
from xfv.method.xmaps import all_methods, check_methods
from xfv.models import get_model
from xfv.pipeline.explain import explain_pair_progressively
from xfv.store import Store
from xfv.store.arrays import pack_maps, unpack_maps, unpack_method_maps, xmap_arrays
from xfv.store.catalog import find_model, register_model
from xfv.store.images import image_file
from xfv.store.models import Model
from xfv.store.pairs import get_pair
from xfv.store.xmaps import XMapRecord, add_xmaps, missing_xmap_methods, occlusion_setting, stored_maps, xmap_blob
from xfv.web.errors import ConflictError
from xfv.web.jobs import Job, JobManager
from xfv.web.lru import LRU
from xfv.web.render import Display, png, render_map, select_map


@lru_cache(maxsize=512)
def _aligned(path: str, input_mode: str, alignment: str, size: int) -> np.ndarray:
    """The aligned face of an image file (cached: the viewer asks for it with every map)."""
    return align_face(load_image(path), alignment, size, input_mode, source=path).face


class PairMaps:
    """Reads, draws and computes the X-Maps of stored pairs with one occlusion setting."""

    def __init__(self, store: Store, jobs: JobManager, settings: OcclusionSettings) -> None:
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self._maps: LRU[tuple[int, str, int, str], dict[str, np.ndarray]] = LRU(128)

    # --- reading -------------------------------------------------------------------------------

    def aligned_face(self, session: Session, image_id: int, model: str) -> np.ndarray:
        """An image of the store aligned as ``model`` expects (its stored spec says how)."""
        spec = find_model(session, model).spec
        file = image_file(session, image_id)
        return _aligned(str(file.path), file.input_mode, str(spec["alignment"]), int(spec["input_size"]))

    def setting_for(self, session: Session, pair_id: int, model: str, setting: str | None) -> str:
        """The occlusion setting to show: the one asked for, else the server's when stored, else
        the first stored one; :class:`NotFoundError` when the pair has no maps of ``model``."""
        keys = [m.setting for m in stored_maps(session, pair_id) if m.model == model]
        if setting is not None:
            if setting not in keys:
                raise NotFoundError(
                    f"pair {pair_id} has no X-Maps of model {model!r} with occlusion setting {setting!r}"
                )
            return setting
        if not keys:
            raise NotFoundError(
                f"pair {pair_id} has no X-Maps of model {model!r} yet: start a job with POST .../xmaps/{model}"
            )
        return self.settings.cache_key() if self.settings.cache_key() in keys else keys[0]

    def raw_maps(
        self, session: Session, pair_id: int, model: str, method: int, setting: str | None
    ) -> dict[str, np.ndarray]:
        """The stored maps of one method (``image{1,2}_p{size}`` and ``image{1,2}_merged``) of the
        occlusion setting :meth:`setting_for` picks."""
        check_methods([method])
        return self._stored(session, pair_id, model, method, self.setting_for(session, pair_id, model, setting))

    def _stored(self, session: Session, pair_id: int, model: str, method: int, setting: str) -> dict[str, np.ndarray]:
        """The unpacked maps of one method and setting (cached in this process)."""
        return self._maps.get_or_make(
            (pair_id, model, method, setting), lambda: unpack_maps(xmap_blob(session, pair_id, model, method, setting))
        )

    def map_png(
        self,
        session: Session,
        pair_id: int,
        model: str,
        method: int,
        image: int,
        patch: str,
        display: Display,
        setting: str | None,
    ) -> bytes:
        """One X-Map picture of a stored pair as PNG."""
        check_methods([method])
        pair = get_pair(session, pair_id)
        similarity = select_map(self._shown_maps(session, pair_id, model, method, setting), image, patch)
        face = self.aligned_face(session, pair.image1_id if image == 1 else pair.image2_id, model)
        return png(render_map(face, similarity, display))

    def _shown_maps(
        self, session: Session, pair_id: int, model: str, method: int, setting: str | None
    ) -> dict[str, np.ndarray]:
        """The stored maps; while a job computes the server's setting, the coarse maps it has so far."""
        if setting in (None, self.settings.cache_key()):
            blob = self.jobs.partial(self._job_key(pair_id, model))
            partial = unpack_method_maps(blob) if blob else {}
            if method in partial:
                return partial[method]
        key = self.setting_for(session, pair_id, model, setting)
        return self._stored(session, pair_id, model, method, key)

    # --- computing -----------------------------------------------------------------------------

    def missing_methods(self, session: Session, pair_id: int, model: Model) -> tuple[int, ...]:
        """Methods of the server's setting not yet stored for this pair and model."""
        missing = missing_xmap_methods(session, model, self.settings.cache_key(), [pair_id], all_methods())
        return missing.get(pair_id, ())

    def start(self, session: Session, pair_id: int, model_name: str) -> dict[str, Any] | None:
        """Start computing the pair's missing X-Maps of ``model_name``; None if none is missing."""
        get_pair(session, pair_id)
        model = find_model(session, model_name)
        missing = self.missing_methods(session, pair_id, model)
        if not missing:
            return None
        total = 2 * (self.settings.count + 1)
        url = f"/api/pairs/{pair_id}"
        return self.jobs.submit(
            "pair-xmaps",
            self._job_key(pair_id, model.name),
            total,
            url,
            lambda job: self._compute(job, pair_id, model.name, missing),
        )

    def _job_key(self, pair_id: int, model_name: str) -> str:
        """What a job computes: the pair's X-Maps of a model with the server's setting."""
        return f"pair-xmaps:{pair_id}:{model_name}:{self.settings.cache_key()}"

    def _compute(self, job: Job, pair_id: int, model_name: str, methods: tuple[int, ...]) -> None:
        """The job: align both faces, explain the pair with the missing methods level by level
        (reporting each coarse level's maps at once), store the final maps."""
        face_model = get_model(model_name)
        with self.store.transaction() as session:
            row = register_model(session, face_model.spec)
            pair = get_pair(session, pair_id)
            files = [image_file(session, image_id) for image_id in (pair.image1_id, pair.image2_id)]
        spec = face_model.spec
        faces = [_aligned(str(f.path), f.input_mode, spec.alignment, spec.input_size) for f in files]
        explanation = job.explain_by_level(
            explain_pair_progressively(faces[0], faces[1], face_model, methods, self.settings, progress=job.advance),
            self.settings.patch_sizes,
        )
        records = [
            XMapRecord(pair_id, method, explanation.distance, explanation.forward_passes, pack_maps(xmap_arrays(maps)))
            for method, maps in explanation.maps.items()
        ]
        self._store(row, records)

    def _store(self, model: Model, records: list[XMapRecord]) -> None:
        """Insert the maps not stored meanwhile (by ``xfv compute`` or another server)."""
        for attempt in range(2):
            try:
                with self.store.transaction() as session:
                    setting = occlusion_setting(session, self.settings)
                    missing = set(self.missing_methods(session, records[0].pair_id, model))
                    add_xmaps(session, model, setting, [r for r in records if r.method in missing])
                return
            except IntegrityError:
                if attempt:
                    raise ConflictError(
                        "the X-Maps were being written by another process at the same time: reload"
                    ) from None
