"""Fetching LFW: the official archive and ``pairs.txt``, verified, resumable, with a progress bar.

Downloads go to ``NAME.part`` beside the target and continue from where they stopped with an
HTTP Range request (a server that ignores Range makes it start over). A finished file is checked
against its checksum before it takes its real name; a mismatch deletes it. The archive is
extracted once (a marker file records it), refusing members that would land outside the root.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path

from tqdm import tqdm

from xfv.errors import DatasetError

#: Where the LFW authors publish the data set; override with --archive-url / --pairs-url (mirrors).
LFW_BASE_URL = "http://vis-www.cs.umass.edu/lfw/"
BLOCK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: URL, expected checksum ``ALGO:HEX`` (None: not verified), local name."""

    url: str
    checksum: str | None
    filename: str


#: LFW deep-funneled images (the version xfv's ``lfw-funneled`` input mode is made for).
LFW_ARCHIVE = RemoteFile(
    LFW_BASE_URL + "lfw-deepfunneled.tgz", "md5:68331da3eb755a505a502b5aacb3c201", "lfw-deepfunneled.tgz"
)
#: View 2 of the LFW protocol: 10 folds x (300 genuine + 300 impostor) pairs.
LFW_PAIRS = RemoteFile(LFW_BASE_URL + "pairs.txt", "md5:9f1ba174e4e1c508ff7cdf10ac338a7d", "pairs.txt")


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``ALGO:HEX`` -> (algorithm, lower-case hex); the algorithm must be one hashlib knows."""
    algorithm, _, digest = checksum.partition(":")
    if not digest or algorithm not in hashlib.algorithms_available:
        raise DatasetError(f"checksum {checksum!r} is not ALGO:HEX with a known algorithm (e.g. md5:..., sha256:...)")
    return algorithm, digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(path: Path, checksum: str | None) -> bool:
    """Whether ``path`` exists and has ``checksum`` (any existing file when there is none)."""
    if not path.is_file():
        return False
    if checksum is None:
        return True
    algorithm, expected = parse_checksum(checksum)
    return file_digest(path, algorithm) == expected


def _open(url: str, offset: int) -> HTTPResponse | None:
    """Open ``url`` from byte ``offset``; None when the server says nothing is left to send."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the partial file is complete
            return None
        raise DatasetError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DatasetError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None


def _fetch(remote: RemoteFile, part: Path, progress: bool) -> None:
    """Append the rest of ``remote`` to ``part`` (or rewrite it if the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(remote.url, offset)
    if response is None:
        return
    if response.status != 206:
        offset = 0
    remaining = int(response.headers.get("Content-Length", -1))
    received = 0
    with (
        response,
        open(part, "ab" if offset else "wb") as handle,
        tqdm(
            total=offset + remaining if remaining >= 0 else None,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=remote.filename,
            disable=not progress,
        ) as bar,
    ):
        try:
            for block in iter(lambda: response.read(BLOCK), b""):
                handle.write(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, HTTPException) as exc:
            raise DatasetError(f"download of {remote.url} broke off ({exc}); run again to resume") from None
    if 0 <= remaining != received:
        raise DatasetError(f"download of {remote.url} broke off after {offset + received} bytes; run again to resume")


def download(remote: RemoteFile, target: Path, progress: bool = True) -> Path:
    """Fetch ``remote`` to ``target`` (resuming ``target.part``) and verify it; an existing,
    verified ``target`` is kept as it is."""
    if matches(target, remote.checksum):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _fetch(remote, part, progress)
    if not matches(part, remote.checksum):
        part.unlink()
        raise DatasetError(f"{remote.url}: the downloaded file does not match checksum {remote.checksum}; deleted it")
    part.replace(target)
    return target


def extract(archive: Path, root: Path) -> None:
    """Unpack a tar archive into ``root`` once; members outside ``root`` (or links, devices) are
    refused by tarfile's ``data`` filter."""
    marker = root / f".{archive.name}.extracted"
    if marker.is_file():
        return
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{archive}: cannot extract ({exc})") from None
    marker.write_text(archive.name + "\n")


def download_lfw(
    root: Path, archive: RemoteFile = LFW_ARCHIVE, pairs: RemoteFile = LFW_PAIRS, progress: bool = True
) -> Path:
    """LFW in the official layout under ``root``: ``pairs.txt`` and the extracted image folder
    (the archive itself is kept in ``root/downloads`` so a rerun verifies instead of refetching)."""
    root = Path(root)
    download(pairs, root / "pairs.txt", progress)
    extract(download(archive, root / "downloads" / archive.filename, progress), root)
    return root
