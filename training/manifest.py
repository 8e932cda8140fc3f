"""The manifest beside built artifacts: what was built from which data with which libraries.

It doubles as the bootstrap's resume state: a stage listed as done is not run again, and a
change in the shipped data makes every stage stale.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.presets import DATA_DIR

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "sentence-transformers",
    "tokenizers",
    "kiwipiepy",
    "kiwipiepy-model",
)
HASH_CHUNK = 1 << 20
MANIFEST_VERSION = 1


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


@dataclass
class StageRecord:
    seconds: float
    metrics: dict[str, Any]
    finished_at: str


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

    def record(self, stage: str, seconds: float, metrics: dict[str, Any]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.stages[stage] = StageRecord(round(seconds, 1), metrics, now)
