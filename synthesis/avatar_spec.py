"""The :class:`AvatarSpec`: everything that defines one MakeHuman avatar.

An avatar is identity (anny phenotype and face local changes), appearance
(skin, eyes, hair, lips, clothing), a facial expression and a body pose.
Specs are plain data: they validate on construction, serialise to JSON-able
dicts and hash to a stable content key used by the avatar cache.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.expressions import EXPRESSIONS, expression_actions
from hcgym.synthesis.labels import BODY_LOCAL_CHANGES, BONES, FACE_LOCAL_CHANGES, FACIAL_ACTIONS, PHENOTYPES
from hcgym.synthesis.poses import POSES
from hcgym.validate import Fields, check_number, check_vector

HAIR_STYLES = ("bald", "buzz", "short", "medium", "long")
SHIRT_PATTERNS = ("plain", "stripes", "checks", "two_tone")
SLEEVES = ("short", "long")

# Palettes used by AvatarSpec.random (RGB in [0, 1]).
_SKIN = {"african": (0.36, 0.23, 0.16), "asian": (0.86, 0.69, 0.55), "caucasian": (0.93, 0.76, 0.66)}
_HAIR = [(0.06, 0.05, 0.05), (0.18, 0.11, 0.07), (0.33, 0.21, 0.12), (0.55, 0.40, 0.22),
         (0.80, 0.66, 0.40), (0.55, 0.22, 0.10), (0.60, 0.58, 0.56)]
_EYES = [(0.30, 0.18, 0.08), (0.18, 0.10, 0.05), (0.25, 0.45, 0.70), (0.30, 0.50, 0.32), (0.48, 0.38, 0.20)]
_CLOTH = [(0.10, 0.16, 0.40), (0.62, 0.10, 0.12), (0.12, 0.40, 0.20), (0.85, 0.85, 0.82), (0.12, 0.12, 0.13),
          (0.85, 0.60, 0.15), (0.45, 0.25, 0.55), (0.20, 0.55, 0.65), (0.55, 0.55, 0.58), (0.80, 0.40, 0.45)]
_TROUSERS = [(0.12, 0.15, 0.28), (0.10, 0.10, 0.11), (0.35, 0.30, 0.22), (0.40, 0.40, 0.42), (0.20, 0.28, 0.45),
             (0.25, 0.30, 0.18)]
_SHOES = [(0.08, 0.07, 0.07), (0.30, 0.18, 0.10), (0.85, 0.85, 0.85), (0.20, 0.20, 0.25)]

Color = tuple[float, float, float]


@dataclass(frozen=True)
class Appearance:
    """Colours and styles painted into the avatar texture (RGB in [0, 1])."""

    skin: Color = (0.86, 0.69, 0.55)
    eyes: Color = (0.30, 0.18, 0.08)
    hair: Color = (0.18, 0.11, 0.07)
    brows: Color | None = None  #: ``None``: a darker shade of ``hair``.
    lips: Color | None = None  #: ``None``: derived from ``skin``.
    hair_style: str = "short"
    hairline: float = 0.0  #: -1 (low) .. 1 (high, receding).
    shirt: Color = (0.10, 0.16, 0.40)
    shirt_secondary: Color = (0.85, 0.85, 0.82)
    shirt_pattern: str = "plain"
    sleeves: str = "short"
    trousers: Color = (0.12, 0.15, 0.28)
    shoes: Color = (0.08, 0.07, 0.07)

    def __post_init__(self) -> None:
        validate_appearance(asdict(self), "appearance", None)


def validate_appearance(data: dict[str, Any], path: str, source: str | None) -> dict[str, Any]:
    """Validate an appearance mapping; returns it with colours as tuples."""
    f = Fields(data, path, source)
    out: dict[str, Any] = {}
    for key in ("skin", "eyes", "hair", "shirt", "shirt_secondary", "trousers", "shoes"):
        if f.has(key):
            out[key] = f.color(key)
    for key in ("brows", "lips"):
        if f.has(key):
            out[key] = None if f.raw(key) is None else f.color(key)
    if f.has("hair_style"):
        out["hair_style"] = f.string("hair_style", choices=HAIR_STYLES)
    if f.has("hairline"):
        out["hairline"] = f.number("hairline", lo=-1.0, hi=1.0)
    if f.has("shirt_pattern"):
        out["shirt_pattern"] = f.string("shirt_pattern", choices=SHIRT_PATTERNS)
    if f.has("sleeves"):
        out["sleeves"] = f.string("sleeves", choices=SLEEVES)
    f.done()
    return out


@dataclass(frozen=True)
class AvatarSpec:
    """One avatar: identity, appearance, expression and pose.

    Attributes:
        phenotype: anny phenotype values in [0, 1] (missing labels default to 0.5). In anny,
            ``gender`` 0 is male and 1 female.
            ``african``, ``asian`` and ``caucasian`` are normalised by anny to sum to 1.
        local_changes: anny local changes in [-1, 1] (face shape; the main identity cue).
        appearance: colours and styles of the texture.
        expression: a named expression from :data:`EXPRESSIONS`.
        expression_intensity: scales the named expression, in [0, 1].
        facial_actions: extra ARKit facial actions in [0, 1], added to the named expression.
        pose: a named pose from :data:`POSES`.
        bone_rotations: extra bone rotations (degrees, rotation vectors; see :mod:`~hcgym.synthesis.poses`)
            applied on top of the named pose (composed after it).
    """

    phenotype: dict[str, float] = field(default_factory=dict)
    local_changes: dict[str, float] = field(default_factory=dict)
    appearance: Appearance = field(default_factory=Appearance)
    expression: str = "neutral"
    expression_intensity: float = 1.0
    facial_actions: dict[str, float] = field(default_factory=dict)
    pose: str = "stand"
    bone_rotations: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        src = None
        for k, v in self.phenotype.items():
            if k not in PHENOTYPES:
                raise SpecError(f"phenotype.{k}", f"unknown phenotype (allowed: {', '.join(PHENOTYPES)})", src)
            check_number(v, f"phenotype.{k}", src, 0.0, 1.0)
        for k, v in self.local_changes.items():
            if k not in _ALL_LOCAL_CHANGES:
                raise SpecError(f"local_changes.{k}", "unknown anny local change (see hcgym.synthesis.labels)", src)
            check_number(v, f"local_changes.{k}", src, -1.0, 1.0)
        if not isinstance(self.appearance, Appearance):
            raise SpecError("appearance", "expected an Appearance", src)
        if self.expression not in EXPRESSIONS:
            raise SpecError("expression", f"unknown expression {self.expression!r} "
                            f"(allowed: {', '.join(EXPRESSIONS)})", src)
        check_number(self.expression_intensity, "expression_intensity", src, 0.0, 1.0)
        for k, v in self.facial_actions.items():
            if k not in FACIAL_ACTIONS:
                raise SpecError(f"facial_actions.{k}", "unknown facial action (allowed: the 52 ARKit names "
                                "in hcgym.synthesis.labels.FACIAL_ACTIONS)", src)
            check_number(v, f"facial_actions.{k}", src, 0.0, 1.0)
        if self.pose not in POSES:
            raise SpecError("pose", f"unknown pose {self.pose!r} (allowed: {', '.join(POSES)})", src)
        for k, v in self.bone_rotations.items():
            if k not in BONES:
                raise SpecError(f"bone_rotations.{k}", "unknown bone (allowed: the 104 names in "
                                "hcgym.synthesis.labels.BONES)", src)
            check_vector(v, f"bone_rotations.{k}", src, 3, -360.0, 360.0)

    # ----------------------------------------------------------------- derived
    def resolved_facial_actions(self) -> dict[str, float]:
        """Named expression (scaled) plus explicit facial actions, clipped to [0, 1]."""
        acts = expression_actions(self.expression, self.expression_intensity)
        for k, v in self.facial_actions.items():
            acts[k] = min(1.0, acts.get(k, 0.0) + v)
        return acts

    def resolved_pose(self) -> dict[str, tuple[float, float, float]]:
        """Bone rotation vectors (degrees) of the named pose with ``bone_rotations`` composed on top."""
        from hcgym.geometry import matrix_to_axis_angle, rotvec_to_matrix

        pose = dict(POSES[self.pose])
        for bone, extra in self.bone_rotations.items():
            base = rotvec_to_matrix(np.radians(pose.get(bone, (0.0, 0.0, 0.0))))
            axis, angle = matrix_to_axis_angle(rotvec_to_matrix(np.radians(extra)) @ base)
            pose[bone] = tuple(float(x) for x in np.degrees(axis * angle))
        return pose

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bone_rotations"] = {k: list(v) for k, v in self.bone_rotations.items()}
        for k, v in d["appearance"].items():
            if isinstance(v, tuple):
                d["appearance"][k] = list(v)
        return d

    def identity_key(self) -> str:
        """Hash of what defines *who* the avatar is (shape and face colours), not pose, expression or clothes."""
        a = self.appearance
        ident = {"phenotype": _rounded(self.phenotype), "local_changes": _rounded(self.local_changes),
                 "skin": a.skin, "eyes": a.eyes, "hair": a.hair, "brows": a.brows, "lips": a.lips,
                 "hair_style": a.hair_style, "hairline": a.hairline}
        return _hash(ident)

    def content_key(self) -> str:
        """Hash of the whole spec: the avatar cache key."""
        return _hash(self.to_dict())

    def with_(self, **changes: Any) -> "AvatarSpec":
        """A copy with some fields replaced (``spec.with_(expression="happy", pose="wave")``)."""
        return replace(self, **changes)

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_dict(cls, data: Any, path: str = "avatar", source: str | None = None) -> "AvatarSpec":
        """Validate a mapping (as written by :meth:`to_dict` or in a world YAML).

        ``{"seed": 7}`` samples :meth:`random`; other keys given beside ``seed``
        override the sampled values (``{"seed": 7, "expression": "happy"}``).
        """
        f = Fields(data, path, source)
        base = cls.random(f.integer("seed", lo=0)) if f.has("seed") else cls()
        kw: dict[str, Any] = {}
        if f.has("phenotype"):
            pf = Fields(f.raw("phenotype"), f.sub("phenotype"), source)
            kw["phenotype"] = {**base.phenotype}
            for k in list(pf.data):
                if k not in PHENOTYPES:
                    raise pf.error(str(k), f"unknown phenotype (allowed: {', '.join(PHENOTYPES)})")
                kw["phenotype"][k] = pf.number(k, lo=0.0, hi=1.0)
        if f.has("local_changes"):
            lf = Fields(f.raw("local_changes"), f.sub("local_changes"), source)
            kw["local_changes"] = {**base.local_changes}
            for k in list(lf.data):
                if k not in _ALL_LOCAL_CHANGES:
                    raise lf.error(str(k), "unknown anny local change (see hcgym.synthesis.labels)")
                kw["local_changes"][k] = lf.number(k, lo=-1.0, hi=1.0)
        if f.has("appearance"):
            kw["appearance"] = replace(base.appearance, **validate_appearance(f.raw("appearance"),
                                                                           f.sub("appearance"), source))
        if f.has("expression"):
            kw["expression"] = f.string("expression", choices=tuple(EXPRESSIONS))
        if f.has("expression_intensity"):
            kw["expression_intensity"] = f.number("expression_intensity", lo=0.0, hi=1.0)
        if f.has("facial_actions"):
            af = Fields(f.raw("facial_actions"), f.sub("facial_actions"), source)
            for k in list(af.data):
                if k not in FACIAL_ACTIONS:
                    raise af.error(str(k), "unknown facial action (allowed: the 52 ARKit names in "
                                   "hcgym.synthesis.labels.FACIAL_ACTIONS)")
            kw["facial_actions"] = {k: af.number(k, lo=0.0, hi=1.0) for k in list(af.data)}
        if f.has("pose"):
            kw["pose"] = f.string("pose", choices=tuple(POSES))
        if f.has("bone_rotations"):
            bf = Fields(f.raw("bone_rotations"), f.sub("bone_rotations"), source)
            for k in list(bf.data):
                if k not in BONES:
                    raise bf.error(str(k), "unknown bone (allowed: the 104 names in hcgym.synthesis.labels.BONES)")
            kw["bone_rotations"] = {k: bf.vector(k, 3, lo=-360.0, hi=360.0) for k in list(bf.data)}
        f.done()
        return replace(base, **kw)

    @classmethod
    def random(cls, seed: int) -> "AvatarSpec":
        """A plausible adult, fully determined by ``seed``.

        Face local changes are uniform in [-0.6, 0.6] and mirrored left/right;
        macro phenotypes stay in adult ranges; colours follow the ethnic mix.
        """
        rng = np.random.default_rng(np.random.SeedSequence([0x48C6, int(seed)]))
        female = rng.random() < 0.5
        mix = rng.dirichlet([0.6, 0.6, 0.6])
        pheno = {
            # anny: gender 1 is female, 0 male; height 0.27-0.52 gives about 1.50-1.80 m (female)
            # and 1.65-1.92 m (male) adults.
            "gender": float(rng.uniform(0.85, 1.0) if female else rng.uniform(0.0, 0.15)),
            "age": float(rng.uniform(0.6, 0.92)),
            "muscle": float(rng.uniform(0.3, 0.75)),
            "weight": float(rng.uniform(0.3, 0.7)),
            "height": float(rng.uniform(0.27, 0.52)),
            "proportions": float(rng.uniform(0.4, 0.75)),
            "cupsize": float(rng.uniform(0.35, 0.65)) if female else 0.5,
            "firmness": float(rng.uniform(0.4, 0.7)),
            "african": float(mix[0]), "asian": float(mix[1]), "caucasian": float(mix[2]),
        }
        local: dict[str, float] = {}
        for name in FACE_LOCAL_CHANGES:
            if name.startswith("r-"):
                continue
            v = float(rng.uniform(-0.6, 0.6))
            local[name] = v
            if name.startswith("l-"):
                local["r-" + name[2:]] = v
        skin = sum(w * np.asarray(_SKIN[k]) for k, w in zip(("african", "asian", "caucasian"), mix))
        skin = np.clip(skin * rng.uniform(0.92, 1.06) + rng.normal(0, 0.012, 3), 0.05, 1.0)
        dark = skin.mean() < 0.45
        old = pheno["age"] > 0.85
        hair_i = int(rng.choice(len(_HAIR), p=_hair_probs(dark, old)))
        eye_i = int(rng.choice(len(_EYES), p=[0.35, 0.25, 0.15, 0.1, 0.15] if not dark else [0.5, 0.5, 0, 0, 0]))
        styles = ("buzz", "short", "medium", "long") if female else ("bald", "buzz", "short", "medium")
        style_p = (0.05, 0.25, 0.35, 0.35) if female else (0.08, 0.3, 0.47, 0.15)
        shirt_i, sec_i = rng.choice(len(_CLOTH), 2, replace=False)
        appearance = Appearance(
            skin=_c(skin),
            eyes=_c(np.asarray(_EYES[eye_i]) * rng.uniform(0.85, 1.15)),
            hair=_c(np.asarray(_HAIR[hair_i]) * rng.uniform(0.85, 1.15)),
            hair_style=str(rng.choice(styles, p=style_p)),
            hairline=float(rng.uniform(-0.6, 0.8 if not female else 0.2)),
            shirt=_c(np.asarray(_CLOTH[shirt_i]) * rng.uniform(0.85, 1.1)),
            shirt_secondary=_c(_CLOTH[sec_i]),
            shirt_pattern=str(rng.choice(SHIRT_PATTERNS, p=(0.4, 0.25, 0.2, 0.15))),
            sleeves=str(rng.choice(SLEEVES)),
            trousers=_c(np.asarray(_TROUSERS[rng.integers(len(_TROUSERS))]) * rng.uniform(0.85, 1.15)),
            shoes=_c(_SHOES[rng.integers(len(_SHOES))]),
        )
        return cls(phenotype=pheno, local_changes=local, appearance=appearance)


def _hair_probs(dark: bool, old: bool) -> list[float]:
    p = np.array([0.5, 0.3, 0.1, 0.0, 0.0, 0.0, 0.1]) if dark else np.array([0.15, 0.25, 0.2, 0.12, 0.12, 0.06, 0.1])
    if old:
        p[-1] += 0.4
    return list(p / p.sum())


def _c(x: Any) -> Color:
    return tuple(round(float(v), 4) for v in np.clip(np.asarray(x, dtype=float), 0.0, 1.0))  # type: ignore[return-value]


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in sorted(d.items())}


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _json_default(o: Any) -> Any:
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    raise TypeError(type(o))


_ALL_LOCAL_CHANGES = frozenset(FACE_LOCAL_CHANGES) | frozenset(BODY_LOCAL_CHANGES)
