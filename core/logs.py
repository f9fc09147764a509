"""Quiet third-party output on the command line (``hcgym --verbose ...`` lets it through).

MediaPipe/TF Lite, absl/glog, Warp, PyBullet, libpng, ONNX Runtime, Ray and Stable-Baselines3 print
start-up banners and warnings that say nothing about the user's run. :func:`quiet_output`:

* sets the libraries' own switches before they are imported (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL``;
  a value the user set wins), absl's Python verbosity, and ignores deprecation warnings raised outside
  hcgym;
* filters file descriptors 1 and 2, because native code (C++ logging, ``printf`` in extension modules,
  worker processes that inherit the descriptors) writes there whatever Python says: a thread forwards
  everything but the lines that match :data:`NOISE`. Progress bars (``\\r`` updates) pass through at once.

Nothing here runs unless the command line asks for it; importing hcgym as a library changes no output.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import sys
import threading
import warnings
from collections.abc import Iterator

#: Known third-party noise, each pattern one whole line (with its newline); they may start mid-line,
#: after a progress bar that printed no newline.
NOISE: tuple[re.Pattern[bytes], ...] = tuple(re.compile(p) for p in (
    rb"INFO: Created TensorFlow Lite \S+ delegate for \S+\n",                    # TF Lite (MediaPipe)
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\n",
    rb"[IWE]\d{4} [\d:. ]+\s+\d+ [\w.\-]+:\d+\] [^\n]*\n",                       # glog / absl C++ lines
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[IWV]:onnxruntime:[^\n]*\n",       # ONNX Runtime
    rb"libpng warning: [^\n]*\n",
    rb"pybullet build time: [^\n]*\n",
    rb"Warp \S+ initialized:\n(?:   [^\n]*\n)*",                                 # Warp banner (indented block)
    rb"Warp CUDA warning: [^\n]*\n",
    rb"Module \S+ (?:\w{7} )?load on device '[^']*' took [^\n]*\n",             # Warp kernel loads
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+INFO [\w.]+:\d+ -- [^\n]*\n",       # Ray driver INFO
    rb"\(raylet[^)]*\) [^\n]*\n",
    rb"Using (?:cpu|cuda[:\d]*|mps) device\n",                                   # Stable-Baselines3
    rb"Wrapping the env (?:with a `Monitor` wrapper|in a DummyVecEnv\.|in a VecTransposeImage\.)\n",
))

#: Set (when unset) before third-party libraries load, and put back afterwards.
QUIET_ENV = {
    "GLOG_minloglevel": "2",        # glog: errors only
    "TF_CPP_MIN_LOG_LEVEL": "2",    # TensorFlow / TF Lite C++: errors only
}


def strip_noise(data: bytes) -> bytes:
    """``data`` without the lines that match :data:`NOISE`."""
    for pattern in NOISE:
        data = pattern.sub(b"", data)
    return data


class _FdFilter:
    """Replaces file descriptor ``fd`` by a pipe; a thread forwards what arrives, less the noise."""

    def __init__(self, fd: int) -> None:
        self.fd, self.real = fd, os.dup(fd)
        self.read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, name=f"hcgym-logs-{fd}", daemon=True)
        self.thread.start()

    def _write(self, data: bytes) -> None:
        data = strip_noise(data)
        while data:
            data = data[os.write(self.real, data):]

    def _pump(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self.read_end], [], [], 0.2)
            if not ready:  # quiet for a while: a partial line (a prompt, a bar) goes out as it is
                if pending:
                    self._write(pending)
                    pending = b""
                continue
            chunk = os.read(self.read_end, 1 << 16)
            if not chunk:
                break
            pending += chunk
            cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
            if cut:
                self._write(pending[:cut])
                pending = pending[cut:]
        if pending:
            self._write(pending)
        os.close(self.read_end)

    def close(self, timeout: float = 5.0) -> None:
        """Put the real descriptor back and wait for the pipe to drain (writers in child processes that
        outlive this call keep it open; then the thread ends with them)."""
        os.dup2(self.real, self.fd)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            os.close(self.real)


def _flush_native() -> None:
    """Flush Python's and C's stdio buffers (a C library's stdout is fully buffered on a pipe)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _absl_errors_only() -> None:
    """absl's Python logging (used by MediaPipe) at ERROR, when absl is installed."""
    import importlib.util

    if importlib.util.find_spec("absl") is not None:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def quiet_output(verbose: bool = False) -> Iterator[None]:
    """Within the block, third-party noise does not reach the terminal (nothing changes when ``verbose``)."""
    if verbose:
        yield
        return
    saved_env = {key: os.environ.get(key) for key in QUIET_ENV}
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    filters: list[_FdFilter] = []
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(?!hcgym)")
        _absl_errors_only()
        _flush_native()
        try:
            for fd in (1, 2):
                with contextlib.suppress(OSError):  # a closed descriptor stays as it is
                    filters.append(_FdFilter(fd))
            yield
        finally:
            _flush_native()
            for f in filters:
                f.close()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


__all__ = ["NOISE", "QUIET_ENV", "quiet_output", "strip_noise"]
