"""Ingest on SQLite and PostgreSQL: idempotent, all-or-nothing, clear errors; and the LFW download
from a local HTTP server (loopback) serving an archive in the official layout."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.synthetic import write_lfw_dataset
from xfv.cli import main
from xfv.errors import DatasetError, ImageError
from xfv.faces import load_image
from xfv.faces.quality import image_quality
from xfv.pipeline.download import RemoteFile, download
from xfv.store import Store, open_store
from xfv.store.ingest import ingest
from xfv.store.models import Dataset, Identity, Image, Pair


def snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row of the dataset tables, for before/after comparisons."""
    with store.transaction() as session:
        return {
            model.__tablename__: [
                tuple(row)
                for row in session.execute(select(*model.__table__.columns).order_by(*model.__table__.primary_key))
            ]
            for model in (Dataset, Identity, Image, Pair)
        }


def test_ingest_stores_the_protocol_and_a_second_run_changes_nothing(store_url: str, synthetic_lfw: Path) -> None:
    store = open_store(store_url)
    report = ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    assert report.created and (report.pairs, report.images, report.identities) == (200, 251, 101)
    before = snapshot(store)
    again = ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    assert not again.created and snapshot(store) == before
    with store.transaction() as session:
        image = session.scalar(select(Image).where(Image.path == "lfw-deepfunneled/Person_000/Person_000_0001.jpg"))
        assert image is not None and (image.width, image.height) == (48, 48)
        path = synthetic_lfw / image.path
        assert image.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
        assert image.file_size == path.stat().st_size
        assert image.quality == pytest.approx(image_quality(load_image(path), "aligned").score)
        assert image.identity.name == "Person_000"
        first = session.scalar(select(Pair).where(Pair.position == 0))
        last = session.scalar(select(Pair).where(Pair.position == 199))
        assert first is not None and first.same and first.fold == 0
        assert last is not None and not last.same and last.fold == 9


def test_cli_ingest_prints_one_summary_line(
    store_url: str, synthetic_lfw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "ingest",
        "--protocol",
        "lfw",
        "--root",
        str(synthetic_lfw),
        "--name",
        "syn",
        "--input-mode",
        "aligned",
        "--quiet",
    ]
    assert main([*args, "--database-url", store_url]) == 0
    assert capsys.readouterr().out.startswith("ingested syn (lfw, aligned): 200 pairs, 251 images, 101 identities")
    assert main([*args, "--database-url", store_url]) == 0
    assert "already stored, unchanged" in capsys.readouterr().out


@pytest.fixture
def copied_lfw(tmp_path: Path, synthetic_lfw: Path) -> Path:
    """A private copy of the synthetic dataset that a test may break."""
    return Path(shutil.copytree(synthetic_lfw, tmp_path / "copy"))


def test_bad_inputs_are_clear_errors_and_keep_what_is_stored(
    store_url: str, synthetic_lfw: Path, copied_lfw: Path
) -> None:
    store = open_store(store_url)
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    before = snapshot(store)
    (copied_lfw / "pairs.txt").rename(copied_lfw / "pairs.bak")
    with pytest.raises(DatasetError, match="no pairs file found"):
        ingest(store, "lfw", copied_lfw, "broken", "aligned", progress=False)
    (copied_lfw / "pairs.bak").rename(copied_lfw / "pairs.txt")
    with pytest.raises(DatasetError, match="already stored as protocol lfw at"):
        ingest(store, "lfw", copied_lfw, "syn", "aligned", progress=False)
    (copied_lfw / "lfw-deepfunneled" / "Person_004" / "Person_004_0002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 image.* missing .*Person_004_0002\.jpg"):
        ingest(store, "lfw", copied_lfw, "broken", "aligned", progress=False)
    assert snapshot(store) == before


def test_images_changed_since_ingest_are_refused(store_url: str, copied_lfw: Path) -> None:
    store = open_store(store_url)
    ingest(store, "lfw", copied_lfw, "syn", "aligned", progress=False)
    before = snapshot(store)
    image = copied_lfw / "lfw-deepfunneled" / "Person_001" / "Person_001_0003.jpg"
    shutil.copy(copied_lfw / "lfw-deepfunneled" / "Person_002" / "Person_002_0003.jpg", image)
    with pytest.raises(DatasetError, match=r"1 image.* changed on disk since ingest"):
        ingest(store, "lfw", copied_lfw, "syn", "aligned", progress=False)
    assert snapshot(store) == before


def test_an_unreadable_image_stores_nothing(store_url: str, copied_lfw: Path) -> None:
    (copied_lfw / "lfw-deepfunneled" / "Person_009" / "Person_009_0001.jpg").write_bytes(b"not a jpeg")
    store = open_store(store_url)
    with pytest.raises(ImageError, match=r"Person_009_0001\.jpg"):
        ingest(store, "lfw", copied_lfw, "syn", "aligned", progress=False)
    assert snapshot(store)["datasets"] == []


# --- download ------------------------------------------------------------------------------------


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` on loopback with Range support. A name in ``break_once`` gets its first
    response cut off half-way (a dropped connection); ``requests`` records (path, Range header)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Files)
        self.files: dict[str, bytes] = {}
        self.break_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{name}"


class Files(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # the name http.server calls
        name = self.path.lstrip("/")
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        self.server.requests.append((self.path, requested))
        start = int(requested.removeprefix("bytes=").rstrip("-")) if requested else 0
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if name in self.server.break_once:
            self.server.break_once.discard(name)
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def official_archive(source: Path) -> tuple[bytes, bytes]:
    """``lfw-deepfunneled.tgz`` (top folder ``lfw-deepfunneled/Name/Name_000k.jpg``) and ``pairs.txt``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "lfw-deepfunneled", arcname="lfw-deepfunneled")
    return buffer.getvalue(), (source / "pairs.txt").read_bytes()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()  # LFW publishes md5 checksums


def test_download_resumes_verifies_extracts_and_ingests(
    http_server: FileServer, synthetic_lfw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, pairs = official_archive(synthetic_lfw)
    http_server.files.update({"lfw-deepfunneled.tgz": archive, "pairs.txt": pairs})
    http_server.break_once.add("lfw-deepfunneled.tgz")
    root = tmp_path / "lfw"
    args = [
        "ingest", "--protocol", "lfw", "--root", str(root), "--name", "lfw-synthetic", "--input-mode", "aligned",
        "--download", "--archive-url", http_server.url("lfw-deepfunneled.tgz"), "--archive-checksum", md5(archive),
        "--pairs-url", http_server.url("pairs.txt"), "--pairs-checksum", md5(pairs),
        "--database-url", f"sqlite:///{tmp_path / 'store.sqlite'}", "--quiet",
    ]  # fmt: skip
    assert main(args) == 2
    assert "broke off" in capsys.readouterr().err
    part = root / "downloads" / "lfw-deepfunneled.tgz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(archive)
    assert main(args) == 0
    assert "ingested lfw-synthetic (lfw, aligned): 200 pairs, 251 images" in capsys.readouterr().out
    assert ("/lfw-deepfunneled.tgz", f"bytes={kept}-") in http_server.requests
    assert (root / "downloads" / "lfw-deepfunneled.tgz").read_bytes() == archive
    assert (root / "lfw-deepfunneled" / "Person_000" / "Person_000_0001.jpg").is_file()
    requests_before = len(http_server.requests)
    assert main(args) == 0  # everything verified in place: nothing fetched again
    assert len(http_server.requests) == requests_before


def test_a_download_with_the_wrong_checksum_is_deleted(http_server: FileServer, tmp_path: Path) -> None:
    http_server.files["pairs.txt"] = b"10\t300\n"
    remote = RemoteFile(http_server.url("pairs.txt"), md5(b"something else"), "pairs.txt")
    with pytest.raises(DatasetError, match="does not match checksum"):
        download(remote, tmp_path / "pairs.txt", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_url_is_a_clear_error(http_server: FileServer, tmp_path: Path) -> None:
    remote = RemoteFile(http_server.url("nothing.tgz"), None, "nothing.tgz")
    with pytest.raises(DatasetError, match="HTTP 404"):
        download(remote, tmp_path / "nothing.tgz", progress=False)


def test_synthetic_layout_is_read_like_lfw(tmp_path: Path) -> None:
    from xfv.datasets import read_protocol

    pairs = read_protocol("lfw", write_lfw_dataset(tmp_path, pairs_per_class=2))
    assert len(pairs) == 40 and pairs.same.sum() == 20 and set(pairs.folds) == set(range(10))
