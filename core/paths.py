"""Where hcgym keeps its caches.

``HCGYM_CACHE`` (default ``~/.cache/hcgym``) holds built avatars, baked
texture maps and procedural textures. The anny model cache goes to
``ANNY_CACHE_DIR`` when set, else ``$HCGYM_CACHE/anny``.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    """Root of hcgym's cache (created on demand)."""
    root = Path(os.environ.get("HCGYM_CACHE", Path.home() / ".cache" / "hcgym")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def anny_cache_dir() -> Path:
    """Cache directory for the anny model data (about 1.4 GB once built)."""
    env = os.environ.get("ANNY_CACHE_DIR")
    return Path(env).expanduser() if env else cache_dir() / "anny"


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that is renamed to ``final`` on success.

    If the block raises, the temporary directory is removed and ``final`` is
    left untouched, so no half-written output is ever visible. If another
    process created ``final`` first, its copy is kept.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            _rmtree(tmp)
    except BaseException:
        _rmtree(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
