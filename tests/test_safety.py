"""Loading user files: malicious pickles given as detector checkpoints, detector training state and SB3 zips
are refused cleanly (SpecError / exit code 2, one line), never unpickled, and leave no output behind."""

from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hcgym.errors import SpecError  # noqa: E402


class _Payload:
    """Unpickling this creates ``marker``: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a malicious checkpoint ran code"


@pytest.fixture
def evil_pt(tmp_path, marker) -> Path:
    """A torch checkpoint in the detector's layout whose config is a malicious object."""
    buf = io.BytesIO()
    torch.save({"config": _Payload(marker), "state_dict": {}}, buf)
    path = tmp_path / "evil.pt"
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def evil_zip(tmp_path, marker) -> Path:
    """A stable-baselines3-style zip whose ``data`` holds a malicious serialized object."""
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>",
                             ":serialized:": base64.b64encode(pickle.dumps(_Payload(marker))).decode()}}
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", json.dumps(data))
        z.writestr("_stable_baselines3_version", "2.9.2")
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    from hcgym.scripts.cli import main

    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip()


def assert_one_line_refusal(rc: int, err: str, *words: str) -> None:
    assert rc == 2 and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# ---------------------------------------------------------------- detector checkpoints
def test_python_api_refuses_a_malicious_detector_checkpoint(evil_pt, tmp_path, marker):
    from hcgym.perception.detection import PersonDetector, load_detector
    from hcgym.perception.detection.sensor import load_model

    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload(marker)))  # a plain pickle, not a torch zip
    for path in (evil_pt, raw):
        for load in (load_detector, PersonDetector, load_model):
            with pytest.raises(SpecError, match="refused.*could run code.*convert_checkpoint"):
                load(path)


def test_cli_refuses_a_malicious_detector_before_writing(evil_pt, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run_cli(["evaluate", "detector", "--domain", "field", "--detector", evil_pt, "--out", out], capsys)
    assert_one_line_refusal(rc, err, "detector:", "refused")
    assert not out.exists()


def test_cli_refuses_a_malicious_init_of_detector_training(evil_pt, tmp_path, capsys):
    out = tmp_path / "model"
    rc, err = run_cli(["train", "detector", "--data", tmp_path / "data", "--init", evil_pt, "--out", out], capsys)
    assert_one_line_refusal(rc, err, "--init:", "refused")
    assert not out.exists()


def test_detector_training_refuses_a_malicious_resume_state(tmp_path, marker):
    import numpy as np

    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.training import DetectorTrainConfig, train_detector

    state = tmp_path / "state"
    state.mkdir()
    buf = io.BytesIO()
    torch.save({"model": {}, "config": _Payload(marker)}, buf)
    (state / "last.pt").write_bytes(buf.getvalue())
    items = [{"image": np.zeros((64, 64, 3), np.uint8), "boxes": np.zeros((0, 4), np.float32),
              "ignore": np.zeros(0, bool)}]
    model = CenterNet(CenterNetConfig(input_size=(64, 64), width=0.25))
    with pytest.raises(SpecError, match="--resume.*refused"):
        train_detector(items, DetectorTrainConfig(epochs=1, batch_size=1), model=model, out_dir=state,
                       progress=False, log=lambda *_: None)
    assert sorted(p.name for p in state.iterdir()) == ["last.pt"]


def test_old_format_checkpoint_is_refused_with_how_to_convert_and_converts_only_when_trusted(tmp_path, evil_pt):
    from hcgym.perception.detection.centernet import CenterNet, CenterNetConfig
    from hcgym.perception.detection.sensor import convert_checkpoint, load_model, save_checkpoint

    torch.manual_seed(0)
    model = CenterNet(CenterNetConfig(input_size=(64, 64), width=0.25))
    old = tmp_path / "old.pt"  # the config as a pickled dataclass: needs unpickling of a class
    buf = io.BytesIO()
    torch.save({"config": model.config, "state_dict": model.state_dict()}, buf)
    old.write_bytes(buf.getvalue())
    with pytest.raises(SpecError, match="convert_checkpoint"):
        load_model(old)
    new = tmp_path / "new.pt"
    for src in (old, evil_pt):
        with pytest.raises(SpecError, match="trusted=True"):
            convert_checkpoint(src, new)
    assert not new.exists()
    convert_checkpoint(old, new, trusted=True)
    back = load_model(new)
    assert back.config == model.config
    for (k, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k
    # the format written by save_checkpoint loads as it is; metadata must be JSON data
    assert load_model(save_checkpoint(model, tmp_path / "ok.pt", {"note": "x"})).config == model.config
    with pytest.raises(SpecError, match="extra"):
        save_checkpoint(model, tmp_path / "bad.pt", {"obj": object()})
    assert not (tmp_path / "bad.pt").exists()


# ---------------------------------------------------------------- stable-baselines3 checkpoints
def test_ppo_agent_refuses_a_zip_from_outside_the_package_unless_trusted(evil_zip, tmp_path, caplog):
    from hcgym.agents.ppo import PPOAgent, shipped_agent

    with pytest.raises(SpecError, match="--trust-checkpoint"):
        PPOAgent.load(evil_zip)
    caplog.set_level("WARNING")
    PPOAgent.load(shipped_agent("setup1"))  # the package's own: no flag, no warning
    assert not caplog.records
    copy = tmp_path / "copy.zip"
    shutil.copy(shipped_agent("setup1"), copy)
    with pytest.raises(SpecError, match="--trust-checkpoint"):
        PPOAgent.load(copy)
    agent = PPOAgent.load(copy, trust=True)
    assert agent.observation_size() and any("trusted checkpoint" in r.getMessage() for r in caplog.records)


def test_cli_evaluation_refuses_a_malicious_sb3_zip(evil_zip, tmp_path, capsys):
    out = tmp_path / "ev"
    rc, err = run_cli(["evaluate", "active-fr", "--protocol", "setup1", "--agent", "rule,ppo", "--checkpoint",
                       evil_zip, "--out", out], capsys)
    assert_one_line_refusal(rc, err, "--checkpoint:", "--trust-checkpoint")
    assert not out.exists()


def test_cli_training_refuses_to_resume_from_a_malicious_sb3_zip(evil_zip, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(evil_zip, run / "checkpoints" / "last.zip")
    rc, err = run_cli(["train", "active-fr", "--steps", "8", "--envs", "1", "--out", run, "--resume"], capsys)
    assert_one_line_refusal(rc, err, "--resume:", "--trust-checkpoint")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]  # no lattice, logs or model written
