"""Bound the avatar cache: least-recently-used pruning and orphaned-texture clean-up.

After each new build (:func:`hcgym.synthesis.builder.build_avatar`), least-recently-used avatars are
removed once the folder holds more than ``HCGYM_AVATAR_CACHE_MB`` megabytes (default 4096, about 850
avatars; 0 means no bound; a texture shared by several avatars counts once). Avatars used in the last
15 minutes are never removed, so a running job keeps the ones it holds. Avatar textures in
``$HCGYM_CACHE/textures`` that no avatar links to any more (and resampled copies) go when unused for
15 minutes, and temporary folders left by interrupted builds are cleared after an hour.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

#: Environment variable bounding the avatar cache, in megabytes (0: no bound).
AVATAR_CACHE_ENV = "HCGYM_AVATAR_CACHE_MB"
DEFAULT_AVATAR_CACHE_MB = 4096.0
#: Avatars used this recently (seconds) are never pruned; stale temporary build folders are removed after
#: :data:`STALE_TMP_S`.
PRUNE_GRACE_S = 900.0
STALE_TMP_S = 3600.0


def avatar_cache_limit() -> int:
    """The avatar cache bound in bytes from ``HCGYM_AVATAR_CACHE_MB`` (0: no bound)."""
    from hcgym.errors import SpecError

    raw = os.environ.get(AVATAR_CACHE_ENV, "").strip()
    if not raw:
        return int(DEFAULT_AVATAR_CACHE_MB * 2**20)
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not mb >= 0 or mb == float("inf"):
        raise SpecError(AVATAR_CACHE_ENV, f"must be a size in megabytes >= 0 (0: no bound), got {raw!r}")
    return int(mb * 2**20)


def prune_avatar_cache(root: Path, max_bytes: int, keep: tuple[str, ...] = (), textures: Path | None = None,
                       grace_s: float = PRUNE_GRACE_S, now: float | None = None) -> list[str]:
    """Remove least-recently-used avatars from ``root`` until it holds at most ``max_bytes``.

    Recency is the modification time of ``avatar.json`` (touched on every cache hit). Entries in ``keep``
    and entries used within ``grace_s`` seconds stay, even if the folder remains above the bound. Sizes
    count each file once, so a texture hard-linked into several avatars counts once. Temporary folders of
    interrupted builds older than :data:`STALE_TMP_S` are removed. ``max_bytes`` 0 means no bound. With
    ``textures`` (the shared texture folder), avatar textures there that no avatar links to any more and
    that were not used within ``grace_s`` are removed too. Returns the removed keys.
    """
    import time

    root = Path(root)
    now = time.time() if now is None else now
    used: list[tuple[float, Path]] = []  # (last use, path)
    entries = []  # (last use, bytes, path)
    seen: set[tuple[int, int]] = set()  # (device, inode) of files already counted
    try:
        children = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for d in children:
        if not d.is_dir(follow_symlinks=False):
            continue
        if d.name.startswith("."):
            try:
                if now - d.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(d.path, ignore_errors=True)
            except FileNotFoundError:
                pass
            continue
        try:
            used.append((os.stat(os.path.join(d.path, "avatar.json")).st_mtime, Path(d.path)))
        except FileNotFoundError:
            continue
    # A file shared by several avatars counts for its most recent user: LRU order removes the others first,
    # and removing that one frees it.
    for last, path in sorted(used, reverse=True):
        size = 0
        try:
            for f in os.scandir(path):
                st = f.stat(follow_symlinks=False)
                if f.is_file(follow_symlinks=False) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
        except FileNotFoundError:
            continue
        entries.append((last, size, path))
    total = sum(e[1] for e in entries)
    removed = _prune_lru(entries, total, max_bytes, keep, grace_s, now) if 0 < max_bytes < total else []
    if textures is not None:
        _prune_orphan_textures(Path(textures), grace_s, now)
    return removed


def _prune_lru(entries, total: int, max_bytes: int, keep, grace_s: float, now: float) -> list[str]:
    """Remove the oldest entries (last use, bytes, path) outside ``keep`` and the grace period until
    ``total`` bytes fit in ``max_bytes``; returns the removed keys."""
    removed = []
    for used, size, path in sorted(entries):
        if total <= max_bytes:
            break
        if path.name in keep or now - used < grace_s:
            continue
        # Rename first, so a reader never sees a half-removed avatar.
        doomed = path.with_name(f".{path.name}.pruned")
        try:
            os.rename(path, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        total -= size
        removed.append(path.name)
    return removed


#: Avatar texture files in the shared texture folder (``<key>-t<texmap>p<paint>-<size>.png``).
_AVATAR_TEXTURE = re.compile(r"-t\d+p\d+-\d+\.png$")


def _prune_orphan_textures(folder: Path, grace_s: float, now: float) -> None:
    """Remove avatar textures that no avatar folder links to (link count 1) and unused for ``grace_s``."""
    try:
        files = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for f in files:
        if not _AVATAR_TEXTURE.search(f.name) or not f.is_file(follow_symlinks=False):
            continue
        try:
            st = f.stat(follow_symlinks=False)
            if st.st_nlink == 1 and now - st.st_mtime >= grace_s:
                os.unlink(f.path)
        except FileNotFoundError:
            pass


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves hits
        pass
