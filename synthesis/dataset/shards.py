"""Shards: the unit of work, of writing and of resuming.

A shard is a range of items (images, identities or persons). A worker renders it into a
:class:`ShardResult` (encoded files and a JSON record) without touching the output folder;
the driver then writes every file through a temporary name and an atomic rename, writes
the record ``shards/shard_KKKKK.json`` the same way, and only then lists the shard in
``manifest.json``. A run killed at any moment therefore leaves complete files only, and
a re-run renders exactly the shards the manifest does not list (each shard's content
depends only on the config and its index, so a redone shard rewrites the same bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcgym.errors import SpecError
from hcgym.paths import atomic_write_bytes
from hcgym.synthesis.dataset.config import GenerateConfig

MANIFEST = "manifest.json"
FORMAT = "hcgym-dataset-1"


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to render shard ``index`` (items ``start .. start + count - 1``).

    ``world`` is the loaded :class:`~hcgym.worlds.WorldSpec` (scene mode) and ``world_key`` its
    content hash; ``backgrounds`` the scanned photos (scene mode with ``--backgrounds``).
    """

    index: int
    start: int
    count: int
    config: GenerateConfig
    world: Any = None
    world_key: str | None = None
    backgrounds: tuple = ()


@dataclass
class ShardResult:
    """A rendered shard: ``files`` as (path relative to the output folder, bytes), the shard
    ``record`` (JSON bytes), the number of ``items`` and seconds spent per step (not written)."""

    index: int
    files: list[tuple[str, bytes]]
    record: bytes
    items: int
    timings: dict[str, float] = field(default_factory=dict)


def shard_path(index: int) -> str:
    return f"shards/shard_{index:05d}.json"


class ShardStore:
    """The output folder: manifest, shard records and files.

    Args:
        out: the output folder.
        key: :meth:`GenerateConfig.dataset_key` of the run (stored; a resume must match it).
        total: number of shards of the dataset.
    """

    def __init__(self, out: Path, key: dict[str, Any], total: int) -> None:
        self.out = Path(out)
        self.key = json.loads(json.dumps(key))
        self.total = total
        self.finished: set[int] = set()

    # ------------------------------------------------------------ checking
    def check(self) -> None:
        """Fail with :class:`SpecError` if the run cannot write here (writes nothing that stays)."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise SpecError("--out", f"{out} exists and is not a folder")
        if out.is_dir():
            manifest = out / MANIFEST
            if manifest.exists():
                self._compare(manifest)
            elif any(out.iterdir()):
                raise SpecError("--out", f"{out} is not empty and holds no dataset ({MANIFEST}); "
                                         "use a new or empty folder")
        probe = out
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise SpecError("--out", f"cannot create {out}: {probe} is not a folder")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".hcgym-write-test.", dir=probe)
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            raise SpecError("--out", f"cannot write in {probe}: {e.strerror or e}") from None

    def _compare(self, manifest: Path) -> None:
        try:
            old = json.loads(manifest.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as e:
            raise SpecError("--out", f"{manifest} is not a readable manifest ({e}); use another folder") from None
        if not isinstance(old, dict) or old.get("format") != FORMAT:
            raise SpecError("--out", f"{manifest} is not an hcgym dataset manifest; use another folder")
        if old.get("dataset") != self.key:
            diffs = _differences(old.get("dataset") or {}, self.key)
            raise SpecError("--out", f"{self.out} holds a dataset made with other settings ({'; '.join(diffs)}); "
                                     "rerun with the same settings to resume, or use another folder")

    # ------------------------------------------------------------- writing
    def open(self) -> set[int]:
        """Create the folder, remove temporary files of a killed run and return the finished shards."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        manifest = self.out / MANIFEST
        done: set[int] = set()
        if manifest.exists():
            old = json.loads(manifest.read_text())
            done = {int(k) for k in old.get("finished", []) if (self.out / shard_path(int(k))).is_file()}
        self.finished = done
        self._write_manifest(complete=False)
        return set(done)

    def write(self, result: ShardResult) -> None:
        """Write a rendered shard: its files, then its record, then the manifest entry."""
        for rel, data in result.files:
            atomic_write_bytes(self.out / rel, data)
        atomic_write_bytes(self.out / shard_path(result.index), result.record)
        self.finished.add(result.index)
        self._write_manifest(complete=False)

    def records(self) -> list[dict[str, Any]]:
        """Every shard record, in shard order."""
        return [json.loads((self.out / shard_path(k)).read_text()) for k in range(self.total)]

    def complete(self) -> None:
        self._write_manifest(complete=True)

    def _write_manifest(self, complete: bool) -> None:
        data = {"format": FORMAT, "dataset": self.key, "shards_total": self.total,
                "finished": sorted(self.finished), "complete": complete}
        atomic_write_bytes(self.out / MANIFEST, (json.dumps(data, indent=1) + "\n").encode())

    def _remove_temporaries(self) -> None:
        """Temporary names start with a dot (see :func:`hcgym.paths.atomic_write_bytes`)."""
        for root, dirs, files in os.walk(self.out):
            for name in files:
                if name.startswith("."):
                    Path(root, name).unlink(missing_ok=True)
            for name in [d for d in dirs if d.startswith(".")]:
                shutil.rmtree(Path(root, name), ignore_errors=True)
                dirs.remove(name)


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {b!r} here, {a!r} there")
    return out
