"""``hcgym evaluate biosignal``: the filter study of §5.1 (Tables 22 and 24) and the NBoF study of §5.3 (Table 26)
on ECG simulated fresh from the seed.

Both are seed ablations of small models, so the protocol trains them (as the seed does, from scratch per run):

* **filter** (:mod:`.study`): heartbeats of ``train_people`` simulated people (``beat_dataset``: Kachuee-cut
  beats at 125 Hz, 17 % abnormal) train every backbone with and without the Gaussian-derivative filter bank, from
  the same ``seeds``; beats of ``test_people`` other people score them; at every noise level of ``snr_db`` (the
  stationary noise mix added to the continuous recording; ``None`` = clean). People are keyed by (``seed``,
  person id): the training people are ids ``0 ..``, the test people ids from :data:`TEST_PERSON_BASE`, so no test
  person is ever a training person, and another ``seed`` draws other people altogether.
* **table24**: at ``main_snr``, the slimmed deeper CNN (``deep-light``) with and without the bank against the
  full one (``deep``), from the first ``table24_seeds`` seeds (:func:`~.study.run_table24`).
* **nbof** (:mod:`.nbof_study`): plain NBoF against temporal NBoF and the attention variants on the
  order-sensitive task (:func:`nbof_part`), and on simulated atrial fibrillation (4 rhythm classes, 5 folds).

``results.json``: ``{"filter": {BACKBONE: {"plain": {...}, "filtered": {...}, "gain_acc", "gain_f1", "sigma",
...}}`` at ``main_snr``, ``"noise_sweep": [{"snr_db", "backbones": {...}}]`` (every level), ``"nbof"``, ``"checks"``,
``"table24"``, ``"order_task"``, ``"nbof_checks"``, ``"config"``, ``"seconds"}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.biosignal.backbones import BACKBONES
from hcgym.perception.biosignal.study import FilterStudyConfig, run_filter_study, run_table24

#: First person id of the test people (training people are ids 0 .. train_people - 1).
TEST_PERSON_BASE = 100_000
#: Beats per simulated person (``synthesis.ecg.datasets.BEATS_PER_PERSON``).
BEATS_PER_PERSON = 200


@dataclass(frozen=True)
class BiosignalEvalConfig:
    """One ``hcgym evaluate biosignal`` run."""

    seed: int = 0
    train_people: int = 30
    test_people: int = 10
    epochs: int = 10
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    snr_db: tuple[float | None, ...] = (None, 10.0, 0.0, -5.0)
    main_snr: float | None = 10.0
    backbones: tuple[str, ...] = BACKBONES
    abnormal_share: float = 0.17
    nbof: bool = True
    table24: bool = True
    table24_seeds: int = 3
    quick: bool = False

    def check(self) -> BiosignalEvalConfig:
        for name, lo in (("seed", 0), ("train_people", 1), ("test_people", 1), ("epochs", 1), ("table24_seeds", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise SpecError(name, f"expected an integer >= {lo}, got {v!r}")
        if self.train_people >= TEST_PERSON_BASE:
            raise SpecError("train_people", f"at most {TEST_PERSON_BASE - 1} training people")
        if self.main_snr not in self.snr_db:
            raise SpecError("main_snr", f"{self.main_snr!r} is not one of the noise levels {list(self.snr_db)}")
        if not 0.0 < self.abnormal_share < 1.0:
            raise SpecError("abnormal_share", f"expected a share in (0, 1), got {self.abnormal_share!r}")
        self.study().check()
        return self

    def study(self) -> FilterStudyConfig:
        return FilterStudyConfig(backbones=tuple(self.backbones), snr_db=tuple(self.snr_db), seeds=tuple(self.seeds),
                                 epochs=self.epochs)


def quick_config(seed: int = 0) -> BiosignalEvalConfig:
    """A seconds-long run: two backbones, two seeds, two noise levels, few people, two epochs, no NBoF study."""
    return BiosignalEvalConfig(seed=seed, train_people=4, test_people=2, epochs=2, seeds=(0, 1),
                               snr_db=(None, 0.0), main_snr=0.0, backbones=("mlp", "cnn"), nbof=False, table24_seeds=1,
                               quick=True)


def with_overrides(config: BiosignalEvalConfig, **values: Any) -> BiosignalEvalConfig:
    """``config`` with every value that is not ``None`` replaced."""
    return replace(config, **{k: v for k, v in values.items() if v is not None})


def simulated_beats(config: BiosignalEvalConfig) -> Callable[[str, float | None], tuple[np.ndarray, np.ndarray]]:
    """``beats(split, snr_db) -> (x (N, 187), y (N,))``: the training or test people's beats at a noise level,
    shuffled with the seed (the same people and clean beats at every level; only the noise differs)."""
    from hcgym.synthesis.ecg import beat_dataset

    cache: dict[tuple[str, float | None], tuple[np.ndarray, np.ndarray]] = {}

    def beats(split: str, snr_db: float | None) -> tuple[np.ndarray, np.ndarray]:
        if split not in ("train", "test"):
            raise SpecError("split", f"expected train or test, got {split!r}")
        if (split, snr_db) not in cache:
            n = config.train_people if split == "train" else config.test_people
            first = 0 if split == "train" else TEST_PERSON_BASE
            b = beat_dataset(n * BEATS_PER_PERSON, config.seed, snr_db=snr_db, abnormal_share=config.abnormal_share,
                             people=range(first, first + n))
            order = np.random.default_rng([config.seed, split == "test"]).permutation(len(b.y))
            cache[(split, snr_db)] = (b.x[order], b.y[order])
        return cache[(split, snr_db)]

    return beats


def _cell(c: dict[str, Any]) -> dict[str, Any]:
    keep = ("plain", "filtered", "params", "gain_acc", "gain_f1", "gain_acc_per_seed", "gain_f1_per_seed",
            "wins_acc", "wins_f1", "sigma", "sigma_std")
    return {k: c[k] for k in keep}


def filter_checks(filter_results: dict[str, Any], main_snr: float | None) -> dict[str, Any]:
    """The issue's filter targets: at ``main_snr`` filtered >= plain in mean accuracy and F1 for every backbone;
    the mean gain (over backbones) grows with the noise (Spearman correlation of gain with noise level, levels
    ordered clean < highest SNR < ... < lowest SNR); exactly 3 added parameters in the bank."""
    levels = filter_results["levels"]
    main = next(lv for lv in levels if lv["snr_db"] == main_snr)
    per = {b: {"acc": c["gain_acc"] >= 0, "f1": c["gain_f1"] >= 0} for b, c in main["backbones"].items()}
    ordered = sorted(levels, key=lambda lv: -np.inf if lv["snr_db"] is None else -lv["snr_db"])  # clean first
    gains = {m: [float(np.mean([c[f"gain_{m}"] for c in lv["backbones"].values()])) for lv in ordered]
             for m in ("acc", "f1")}
    rank = np.arange(len(ordered), dtype=float)

    def spearman(v: list[float]) -> float | None:
        if len(v) < 3:
            return None
        r = np.argsort(np.argsort(v)).astype(float)
        return float(np.corrcoef(rank, r)[0, 1])

    return {"main_snr": main_snr, "filtered_ge_plain": per,
            "all_backbones": bool(all(v["acc"] and v["f1"] for v in per.values())),
            "noise_order": [lv["snr_db"] for lv in ordered], "mean_gain": gains,
            "gain_grows_with_noise": {m: spearman(g) for m, g in gains.items()}}


def nbof_part(seed: int, progress: Callable[[str], None] | None = None, quick: bool = False) -> dict[str, Any]:
    """The NBoF study (:mod:`.nbof_study`, default settings): ``{"order_task": {VARIANT: {"acc_mean", ...}},
    "nbof": {VARIANT: {"f1_mean", "f1_std", ...}} (simulated AF, 5 folds), "nbof_checks"}``; the order task's
    seeds are ``3 seed .. 3 seed + 2``, the AF set is drawn with ``seed``. ``quick``: the study's quick presets,
    four variants, two folds (seconds; for tests)."""
    from hcgym.perception.biosignal import nbof_study as ns

    def say(msg: str) -> None:
        if progress is not None:
            progress(f"nbof: {msg}")

    variants = ("nbof", "tnbof", "nbof-ctsa", "tnbof-ctsa") if quick else ns.DEFAULT_VARIANTS
    preset = "quick" if quick else "default"
    order = ns.order_study(variants, seeds=tuple(range(3 * seed, 3 * seed + 3)), settings=preset, progress=say)
    af = ns.af_study(variants, folds=2 if quick else 5, seed=seed, settings=preset, progress=say)
    chance = 1.0 / 2
    checks = {
        "order_nbof_at_chance": bool(abs(order["nbof"]["acc_mean"] - chance) < 0.1),
        "order_tnbof_succeeds": bool(order["tnbof"]["acc_mean"] >= 0.85),
        "order_ctsa_succeeds": bool(order["nbof-ctsa"]["acc_mean"] >= 0.85),
        "af_ctsa_ge_nbof": bool(af["nbof-ctsa"]["f1_mean"] >= af["nbof"]["f1_mean"]),
        "af_ctsa_minus_nbof": ns.paired_difference(af, "nbof-ctsa", "nbof"),
        "af_tnbof_ctsa_minus_nbof": ns.paired_difference(af, "tnbof-ctsa", "nbof"),
    }
    return {"order_task": order, "nbof": af, "nbof_checks": checks}


def run(config: BiosignalEvalConfig, progress: bool = True) -> dict[str, Any]:
    """Run the protocol (see the module docstring)."""
    config = config.check()
    t0 = time.time()

    def say(msg: str) -> None:
        if progress:
            print(f"[biosignal] {msg} ({time.time() - t0:.0f} s)", flush=True)

    beats = simulated_beats(config)
    filt = run_filter_study(beats, config.study(), progress=say if progress else None)
    seconds = {"filter": round(time.time() - t0, 1)}
    main = next(lv for lv in filt["levels"] if lv["snr_db"] == config.main_snr)
    results: dict[str, Any] = {
        "filter": {b: _cell(c) for b, c in main["backbones"].items()},
        "noise_sweep": [{"snr_db": lv["snr_db"], "train": lv["train"], "test": lv["test"],
                         "backbones": {b: _cell(c) for b, c in lv["backbones"].items()}} for lv in filt["levels"]],
        "filter_runs": filt,
        "checks": {"filter": filter_checks(filt, config.main_snr)},
        "config": {**asdict(config), "test_person_base": TEST_PERSON_BASE},
    }
    if config.table24:
        t1 = time.time()
        study = replace(config.study(), seeds=tuple(config.seeds[:config.table24_seeds]))
        results["table24"] = run_table24(beats, config.main_snr, study, progress=say if progress else None)
        seconds["table24"] = round(time.time() - t1, 1)
    if config.nbof:
        t1 = time.time()
        results.update(nbof_part(config.seed, progress=say if progress else None))
        seconds["nbof"] = round(time.time() - t1, 1)
    seconds["total"] = round(time.time() - t0, 1)
    results["seconds"] = seconds
    return results


__all__ = ["BiosignalEvalConfig", "TEST_PERSON_BASE", "filter_checks", "quick_config", "run", "simulated_beats",
           "with_overrides"]
