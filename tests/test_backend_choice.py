"""Every simulator comes from ``make_backend``; a backend that cannot serve a request is refused up front."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hcgym.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
#: Project folders whose code may not construct a backend class (``envs/backends`` is where they live).
FOLDERS = ("core", "envs", "agents", "perception", "synthesis", "scripts", "worlds", "benchmarks")


def _backend_classes() -> set[str]:
    from hcgym.envs.backends import BACKENDS

    return {entry.partition(":")[2] for entry in BACKENDS.values()}


def test_nothing_outside_envs_backends_constructs_a_backend_class():
    classes = _backend_classes()
    offenders = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.is_relative_to(ROOT / "envs" / "backends"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                    if name in classes:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}()")
                elif isinstance(node, ast.ImportFrom) and any(a.name in classes for a in node.names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports a backend class")
    assert not offenders, "use hcgym.envs.backends.make_backend:\n" + "\n".join(offenders)


def test_make_backend_checks_names_and_capabilities():
    from hcgym.envs.backends import CAPABILITIES, check_backend, make_backend

    assert check_backend("embedded", tuple(CAPABILITIES)) == "embedded"
    with pytest.raises(SpecError, match="unknown backend 'gazebo'.*embedded, webots"):
        make_backend("gazebo")
    with pytest.raises(SpecError, match="webots backend cannot add people"):
        check_backend("webots", ("add_human",))
    with pytest.raises(SpecError, match="webots backend cannot render with a camera model"):
        make_backend("webots", requires=("intrinsics",))  # refused before the controller module is imported
    with pytest.raises(SpecError, match="unknown backend capabilities"):
        check_backend("embedded", ("teleport",))


@pytest.mark.parametrize("mode, allowed", [("scene", False), ("faces", True), ("multiview", True)])
def test_generate_refuses_a_backend_that_cannot_serve_the_mode(tmp_path, mode, allowed):
    from hcgym.synthesis.dataset import GenerateConfig

    config = GenerateConfig(out=tmp_path / "out", n=1, mode=mode, backend="webots")
    if allowed:
        config.check()
    else:
        with pytest.raises(SpecError, match=r"--backend.*cannot add people.*--mode scene"):
            config.check()
    assert not (tmp_path / "out").exists()


def test_generate_cli_backend_flag(tmp_path, capsys):
    from hcgym.scripts.cli import main

    assert main(["generate", "--n", "1", "--out", str(tmp_path / "o"), "--backend", "webots"]) == 2
    err = capsys.readouterr().err
    assert "--backend" in err and "webots" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
