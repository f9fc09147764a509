"""The installed package: imports from outside the repository, the pyproject package mapping, package data.

The subprocesses run the same interpreter with the same environment (``PYTHONPATH`` included) from an
empty temporary directory, so they see the installed ``hcgym``, never the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
EXCLUDED = {"tests", "benchmarks", "build"}


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def assert_not_source(path: str | Path, what: str) -> None:
    """``path`` is not a file of the source tree (the venv may live inside the repository, so check folders)."""
    path = Path(path).resolve()
    sources = [(REPO / f).resolve() for f in setuptools_config()["package-dir"].values()] + [REPO / "build"]
    for src in sources:
        assert src != path and src not in path.parents, f"{what} comes from the source tree: {path}"


def package_folders() -> dict[str, Path]:
    """Import name -> repository folder of every folder holding an ``__init__.py``."""
    package_dir: dict[str, str] = setuptools_config()["package-dir"]
    by_folder = {(REPO / folder).resolve(): name for name, folder in package_dir.items()}
    tops = [d for d in REPO.iterdir() if d.is_dir() and d.name not in EXCLUDED and not d.name.startswith(".")
            and not d.name.endswith(".egg-info")]  # .venv, .git, build metadata
    out = {}
    for init in (i for top in tops for i in top.rglob("__init__.py")):
        rel = init.parent.relative_to(REPO)
        if any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        # The nearest mapped ancestor folder gives the name prefix.
        folder, rest = init.parent.resolve(), []
        while folder not in by_folder:
            assert folder != REPO and folder != folder.parent, f"{rel} lies under no folder mapped in pyproject.toml"
            rest.insert(0, folder.name)
            folder = folder.parent
        out[".".join([by_folder[folder], *rest])] = init.parent
    return out


def test_pyproject_maps_the_documented_folders():
    package_dir = setuptools_config()["package-dir"]
    assert package_dir["hcgym"] == "core"
    for sub in ("envs", "worlds", "synthesis", "scripts", "perception", "agents"):
        assert package_dir[f"hcgym.{sub}"] == sub
    for folder in package_dir.values():
        assert (REPO / folder / "__init__.py").is_file(), folder


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(setuptools_config()["packages"])
    found = package_folders()
    assert {"hcgym", "hcgym.envs", "hcgym.envs.backends", "hcgym.worlds", "hcgym.synthesis", "hcgym.scripts",
            "hcgym.perception"} <= set(found)
    missing = sorted(set(found) - listed)
    assert not missing, f"folders with __init__.py missing from [tool.setuptools] packages: {missing}"
    # a data-only package (photos, no __init__.py) is listed so setuptools installs its package data
    stale = sorted(n for n in listed - set(found) if not data_folder(n).is_dir())
    assert not stale, f"packages listed in pyproject.toml without a folder: {stale}"


def data_folder(name: str) -> Path:
    """Repository folder of import name ``name`` by the pyproject mapping (its nearest mapped ancestor)."""
    package_dir: dict[str, str] = setuptools_config()["package-dir"]
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in package_dir:
            return REPO / package_dir[".".join(parts[:k])] / Path(*parts[k:])
    return REPO / Path(*parts)


def test_import_from_outside_the_repository(tmp_path):
    proc = python("""
        import json, site, sys
        import hcgym.envs, hcgym.synthesis, hcgym.worlds
        import hcgym
        print(json.dumps({"file": hcgym.__file__, "site": site.getsitepackages() + [site.getusersitepackages()],
                          "version": hcgym.__version__}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    installed = Path(info["file"]).resolve()
    assert_not_source(installed, "hcgym")
    assert installed.name == "__init__.py" and installed.parent.name == "hcgym"
    # It lies in site-packages, or in a directory put on PYTHONPATH for a --target install.
    roots = [Path(p).resolve() for p in info["site"]]
    roots += [Path(p).resolve() for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    assert installed.parent.parent in roots, f"{installed} is neither in site-packages nor on PYTHONPATH"
    assert info["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_every_package_folder_imports_when_installed(tmp_path):
    names = sorted(package_folders())
    proc = python(f"""
        import importlib, json
        out = {{}}
        for name in {names!r}:
            try:
                out[name] = importlib.import_module(name).__file__
            except Exception as e:
                out[name] = "ERROR " + type(e).__name__ + ": " + str(e)
        print(json.dumps(out))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    broken = {n: f for n, f in files.items() if f is None or f.startswith("ERROR")}
    assert not broken, f"not importable from the installed package: {broken}"
    for name, file in files.items():
        assert_not_source(file, name)
        assert Path(file).parent.name == name.split(".")[-1]


def test_shipped_worlds_are_package_data(tmp_path):
    proc = python("""
        import json
        from importlib.resources import files
        from hcgym.worlds import load_world, shipped_worlds
        root = files("hcgym.worlds")
        yamls = sorted(p.name for p in root.iterdir() if p.name.endswith(".yaml"))
        worlds = {n: len(load_world(n).humans) for n in shipped_worlds()}
        print(json.dumps({"root": str(root), "yamls": yamls, "worlds": worlds,
                          "text": {n: root.joinpath(n).read_text() for n in yamls}}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_not_source(info["root"], "hcgym.worlds")
    source = sorted(p.name for p in (REPO / "worlds").glob("*.yaml"))
    assert {"active_face_room.yaml", "crowd_street.yaml"} <= set(source)
    assert info["yamls"] == source
    assert set(info["worlds"]) == {Path(n).stem for n in source}
    assert info["worlds"]["active_face_room"] == 1 and info["worlds"]["crowd_street"] >= 12
    for name in source:  # the installed copy is the current one
        assert info["text"][name] == (REPO / "worlds" / name).read_text(), f"stale installed {name}"


@pytest.mark.parametrize("module", ["hcgym.worlds.spec", "hcgym.synthesis.avatar_spec"])
def test_spec_modules_do_not_import_heavy_dependencies(tmp_path, module):
    """Reading world and avatar specs needs neither torch, anny nor pybullet."""
    proc = python(f"""
        import sys, {module}
        print(sorted(m for m in ("torch", "anny", "pybullet", "warp") if m in sys.modules))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
