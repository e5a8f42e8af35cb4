"""All configuration in one place: environment variables with the ``XFV_`` prefix.

CLI flags override these values; nothing else reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`get_settings`."""

    home: Path
    cache_dir: Path
    database_url: str
    default_model: str
    max_upload_bytes: int
    max_image_pixels: int
    answer_cache_bytes: int
    threads: int
    align_workers: int
    #: Occlusion embeddings by incremental inference where the model supports it (XFV_INCREMENTAL=0: full passes).
    incremental_occlusion: bool = True

    @property
    def embedding_cache_path(self) -> Path:
        return self.cache_dir / "arrays.sqlite"

    @property
    def model_cache_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def web_answers_path(self) -> Path:
        """The web answers every server process of this machine shares (see ``xfv.web.answers``)."""
        return self.cache_dir / "web-answers.sqlite"


def get_settings() -> Settings:
    """Read the ``XFV_*`` environment variables, falling back to defaults under ``~/.xfv``."""
    home = Path(os.environ.get("XFV_HOME", Path.home() / ".xfv")).expanduser()
    cache_dir = Path(os.environ.get("XFV_CACHE_DIR", home / "cache")).expanduser()
    database_url = os.environ.get("XFV_DATABASE_URL", f"sqlite:///{home / 'xfv.sqlite'}")
    return Settings(
        home=home,
        cache_dir=cache_dir,
        database_url=database_url,
        default_model=os.environ.get("XFV_MODEL", "dlib"),
        max_upload_bytes=int(os.environ.get("XFV_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)),
        max_image_pixels=int(os.environ.get("XFV_MAX_IMAGE_PIXELS", 16_000_000)),
        answer_cache_bytes=int(float(os.environ.get("XFV_ANSWER_CACHE_MB", 64)) * 1_000_000),
        threads=int(os.environ.get("XFV_THREADS", os.cpu_count() or 1)),
        align_workers=int(os.environ.get("XFV_ALIGN_WORKERS", os.cpu_count() or 1)),
        incremental_occlusion=os.environ.get("XFV_INCREMENTAL", "1") not in ("0", "false", "no", "off"),
    )


#: Settings for a worker that is one of many (a process of a pool, a Ray task): one core each.
SINGLE_CORE_WORKER_ENV = {"XFV_THREADS": "1", "XFV_ALIGN_WORKERS": "1"}


def become_single_core_worker() -> None:
    """Make this process use one core (``XFV_THREADS`` and ``XFV_ALIGN_WORKERS`` = 1)."""
    os.environ.update(SINGLE_CORE_WORKER_ENV)
