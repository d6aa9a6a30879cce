"""The cage spec: one YAML file describing a recording setup (shoebox cages only).

A cage file holds exactly these keys (arena frame: origin at the floor centre, mm)::

    dims_mm: [571.5, 355.6, 368.3]        # floor length (x), width (y), height (z)
    mic_positions_mm: [[-265.1, -127.6, 289.7], ...]   # one row per microphone / channel
    mic_orientations: [[0, 0, -1], ...]   # optional; default straight down
    mic_pattern_p: 1.0                    # cardioid family: 1 omni, 0.5 cardioid, 0 figure-8
    absorption: {walls: 0.15, floor: 0.64, ceiling: 0.94}   # scalar or 8 octave bands
    scattering: 0.0                       # share of reflected energy that is diffuse
    temperature_c: 20
    humidity_pct: 50
    mic_gains_db: [0.0, 0.4, -0.3, 0.1]   # optional; each channel's gain (default 0 dB)

Absorption is the energy absorption coefficient (0 .. 1) of each surface, a scalar or
one value per octave band of :data:`BAND_CENTRES_HZ` (500 Hz .. 64 kHz). Built-in cages
(:data:`BUILTIN_CAGES`) are addressed by name; anywhere a cage is needed, a name or a
path works (:func:`load_cage`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.config import Config, load_yaml_file
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import (
    DEFAULT_DIMS_MM,
    DEFAULT_MIC_DROP_MM,
    DEFAULT_MIC_INSET_MM,
    ArenaGeometry,
)

#: Octave-band centres (Hz) of band-wise absorption coefficients.
BAND_CENTRES_HZ = (500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0)
#: The three surface groups of a cage file's ``absorption``.
SURFACE_GROUPS = ("walls", "floor", "ceiling")
#: Microphone counts a cage may have.
MIC_COUNT_RANGE = (3, 24)
#: Longest side (mm) a cage may have: a room of 100 m; beyond, sizes are typing errors
#: (a cage of 1e300 mm overflows the renderer's image table and the arena's grids).
MAX_SIDE_MM = 100_000.0
#: Tolerance (mm) when comparing microphone positions of a model and data.
MIC_TOLERANCE_MM = 1.0

#: Energy absorption per octave band of common cage materials (rough literature
#: values extrapolated to the ultrasound). The wall values are *effective*: they include
#: the energy a real cage scatters towards the absorbing floor and ceiling.
MATERIALS: dict[str, tuple[float, ...]] = {
    "plastic": (0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22, 0.25),
    "hard_plastic": (0.04, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10),
    "foam": (0.20, 0.45, 0.70, 0.85, 0.90, 0.92, 0.92, 0.92),
    "bedding": (0.10, 0.20, 0.35, 0.50, 0.60, 0.65, 0.70, 0.70),
    "thin_bedding": (0.05, 0.08, 0.12, 0.20, 0.28, 0.32, 0.35, 0.35),
    "open": (1.0,) * 8,
}

#: Absorption presets: the material of each surface group. ``cage`` is the paper's
#: cage (plastic walls, foam-coated ceiling, bedding); the others bracket it.
ABSORPTION_PRESETS: dict[str, dict[str, str]] = {
    "cage": {"walls": "plastic", "floor": "bedding", "ceiling": "foam"},
    "anechoic": {"walls": "open", "floor": "open", "ceiling": "open"},
    "damped": {"walls": "foam", "floor": "bedding", "ceiling": "foam"},
    "reverberant": {"walls": "hard_plastic", "floor": "thin_bedding", "ceiling": "plastic"},
    "bare": {"walls": "hard_plastic", "floor": "hard_plastic", "ceiling": "hard_plastic"},
}


def preset_absorption(preset: str) -> dict[str, list[float]]:
    """The ``absorption`` mapping of a named preset of :data:`ABSORPTION_PRESETS`."""
    if preset not in ABSORPTION_PRESETS:
        raise InvalidInputError(
            None, "absorption preset", f"one of {sorted(ABSORPTION_PRESETS)}", repr(preset)
        )
    return {g: list(MATERIALS[m]) for g, m in ABSORPTION_PRESETS[preset].items()}


def corner_mics_mm(dims_mm: Any, inset_mm: Any = 25.0, drop_mm: float = 10.0) -> np.ndarray:
    """(4, 3) microphones near the ceiling corners, ordered (-x,-y), (+x,-y), (+x,+y), (-x,+y).

    ``inset_mm`` from the nearest walls (a scalar, or (x, y) insets), ``drop_mm`` below
    the ceiling.
    """
    dims = np.asarray(dims_mm, dtype=float)
    inset = np.broadcast_to(np.asarray(inset_mm, dtype=float), (2,))
    hx, hy = dims[:2] / 2.0 - inset
    z = dims[2] - drop_mm
    return np.array([[-hx, -hy, z], [hx, -hy, z], [hx, hy, z], [-hx, hy, z]])


@dataclasses.dataclass
class Cage(Config):
    """A recording setup: shoebox cage, microphones and air (see the module docstring).

    Parameters
    ----------
    dims_mm
        (3,) floor length (x), width (y) and height (z).
    mic_positions_mm
        (n_mics, 3) microphone positions, arena frame; row i is audio channel i.
    mic_orientations
        (n_mics, 3) direction each microphone points (any length > 0); None = straight
        down for all.
    mic_pattern_p
        Cardioid-family pattern (pyroomacoustics' convention): 1 omni, 0.75
        sub-cardioid, 0.5 cardioid, 0 figure-of-eight.
    absorption
        Energy absorption of ``walls``, ``floor`` and ``ceiling``: each a scalar or 8
        octave-band values (:data:`BAND_CENTRES_HZ`).
    scattering
        Share (0 .. 1) of the reflected energy that is scattered diffusely.
    temperature_c, humidity_pct
        Air state (speed of sound, ISO 9613-1 air absorption).
    mic_gains_db
        (n_mics,) gain of each channel in dB (``napari-gerbil cage fit`` measures them);
        None = all 0 dB.
    """

    dims_mm: tuple[float, float, float] = DEFAULT_DIMS_MM
    mic_positions_mm: list[list[float]] = dataclasses.field(
        default_factory=lambda: corner_mics_mm(
            DEFAULT_DIMS_MM, DEFAULT_MIC_INSET_MM, DEFAULT_MIC_DROP_MM
        ).tolist()
    )
    mic_orientations: list[list[float]] | None = None
    mic_pattern_p: float = 1.0
    absorption: dict[str, Any] = dataclasses.field(
        default_factory=lambda: preset_absorption("cage")
    )
    scattering: float = 0.0
    temperature_c: float = 20.0
    humidity_pct: float = 50.0
    mic_gains_db: list[float] | None = None

    #: Where the spec came from (a file path or ``builtin:NAME``); not a cage key.
    source: dataclasses.InitVar[str | None] = None

    def __post_init__(self, source: str | None = None) -> None:
        self._source = source
        self._validate()

    # -- validation -----------------------------------------------------------------

    def _fail(self, key: str, expected: str, found: Any) -> InvalidInputError:
        return InvalidInputError(self._source, key, expected, str(found))

    def _validate(self) -> None:
        dims = _float_array(self.dims_mm, self._source, "dims_mm")
        if dims.shape != (3,) or not np.isfinite(dims).all() or (dims <= 0).any():
            raise self._fail("dims_mm", "3 positive finite lengths in mm [x, y, z]", dims.tolist())
        if (dims > MAX_SIDE_MM).any():
            raise self._fail("dims_mm", f"lengths of at most {MAX_SIDE_MM:g} mm", dims.tolist())
        self.dims_mm = tuple(float(v) for v in dims)  # type: ignore[assignment]
        mics = _float_array(self.mic_positions_mm, self._source, "mic_positions_mm")
        lo, hi = MIC_COUNT_RANGE
        if mics.size == 0:
            raise self._fail("mic_positions_mm", f"{lo} to {hi} microphones", "none")
        if mics.ndim != 2 or mics.shape[1:] != (3,) or not np.isfinite(mics).all():
            raise self._fail(
                "mic_positions_mm", "a list of [x, y, z] rows (mm), finite", f"shape {mics.shape}"
            )
        if not lo <= len(mics) <= hi:
            raise self._fail("mic_positions_mm", f"{lo} to {hi} microphones", f"{len(mics)}")
        half = np.array([dims[0] / 2, dims[1] / 2])
        inside = (
            (np.abs(mics[:, :2]) < half).all(axis=1) & (mics[:, 2] > 0) & (mics[:, 2] < dims[2])
        )
        if not inside.all():
            k = int(np.argmin(inside))
            raise self._fail(
                f"mic_positions_mm[{k}]",
                f"a point strictly inside the cage (|x| < {half[0]:g}, |y| < {half[1]:g}, "
                f"0 < z < {dims[2]:g} mm; origin at the floor centre)",
                mics[k].tolist(),
            )
        if len(np.unique(np.round(mics, 3), axis=0)) != len(mics):
            raise self._fail("mic_positions_mm", "distinct microphone positions", "a repeat")
        self.mic_positions_mm = mics.tolist()
        if self.mic_orientations is not None:
            ori = _float_array(self.mic_orientations, self._source, "mic_orientations")
            if ori.shape != mics.shape or not np.isfinite(ori).all():
                raise self._fail(
                    "mic_orientations",
                    f"one finite [x, y, z] direction per microphone, shape {mics.shape}",
                    f"shape {ori.shape}",
                )
            norms = np.linalg.norm(ori, axis=1)
            if (norms < 1e-9).any():
                k = int(np.argmin(norms))
                raise self._fail(f"mic_orientations[{k}]", "a non-zero direction", ori[k].tolist())
            self.mic_orientations = ori.tolist()
        if self.mic_gains_db is not None:
            gains = _float_array(self.mic_gains_db, self._source, "mic_gains_db")
            if gains.shape != (len(mics),) or not np.isfinite(gains).all():
                raise self._fail("mic_gains_db", f"{len(mics)} finite gains in dB, one per "
                                 "microphone", gains.tolist())  # fmt: skip
            if (np.abs(gains) > 40.0).any():
                raise self._fail("mic_gains_db", "gains within +-40 dB", gains.tolist())
            self.mic_gains_db = gains.tolist()
        _check_scalar(self, "mic_pattern_p", 0.0, 1.0)
        _check_scalar(self, "scattering", 0.0, 1.0)
        _check_scalar(self, "temperature_c", -20.0, 50.0)
        _check_scalar(self, "humidity_pct", 0.0, 100.0)
        if not isinstance(self.absorption, dict):
            raise self._fail("absorption", "a mapping {walls, floor, ceiling}", self.absorption)
        unknown = sorted(set(self.absorption) - set(SURFACE_GROUPS))
        missing = sorted(set(SURFACE_GROUPS) - set(self.absorption))
        if unknown or missing:
            raise self._fail(
                "absorption",
                f"exactly the keys {list(SURFACE_GROUPS)}",
                f"unknown {unknown}" if unknown else f"missing {missing}",
            )
        clean: dict[str, Any] = {}
        for group in SURFACE_GROUPS:
            key = f"absorption.{group}"
            value = _float_array(self.absorption[group], self._source, key)
            if value.shape not in ((), (len(BAND_CENTRES_HZ),)):
                raise self._fail(
                    key, f"a scalar or {len(BAND_CENTRES_HZ)} octave-band values", value.tolist()
                )
            if not np.isfinite(value).all() or (value < 0).any() or (value > 1).any():
                raise self._fail(key, "energy absorption in 0 .. 1", value.tolist())
            clean[group] = float(value) if value.ndim == 0 else value.tolist()
        self.absorption = clean

    # -- derived quantities -----------------------------------------------------------

    @property
    def name(self) -> str:
        """Where the spec came from: ``builtin:NAME``, a file path, or ``<inline>``."""
        return self._source or "<inline>"

    @property
    def n_mics(self) -> int:
        """Number of microphones (= audio channels)."""
        return len(self.mic_positions_mm)

    @property
    def dims(self) -> np.ndarray:
        """(3,) cage size in mm."""
        return np.asarray(self.dims_mm, dtype=float)

    @property
    def mics(self) -> np.ndarray:
        """(n_mics, 3) microphone positions in mm."""
        return np.asarray(self.mic_positions_mm, dtype=float)

    def orientations(self) -> np.ndarray:
        """(n_mics, 3) unit vectors each microphone points along."""
        if self.mic_orientations is None:
            return np.tile([0.0, 0.0, -1.0], (self.n_mics, 1))
        ori = np.asarray(self.mic_orientations, dtype=float)
        return ori / np.linalg.norm(ori, axis=1, keepdims=True)

    def mic_gains(self) -> np.ndarray:
        """(n_mics,) linear gain of each channel (1 where the file gives none)."""
        if self.mic_gains_db is None:
            return np.ones(self.n_mics)
        return 10.0 ** (np.asarray(self.mic_gains_db, dtype=float) / 20.0)

    def band_absorption(self) -> dict[str, np.ndarray]:
        """Energy absorption per octave band (8,) of ``walls``, ``floor``, ``ceiling``."""
        n = len(BAND_CENTRES_HZ)
        return {
            g: np.broadcast_to(np.asarray(v, float), (n,)).copy()
            for g, v in self.absorption.items()
        }

    def arena(self) -> ArenaGeometry:
        """The cage as an :class:`~napari_gerbil.io.arena.ArenaGeometry` (no video map)."""
        return ArenaGeometry(self.dims, self.mics)

    def with_changes(self, **changes: Any) -> Cage:
        """A validated copy with some keys changed (source kept, marked as modified)."""
        data = {**self.to_dict(), **changes}
        return Cage(**data, source=f"{self.name} (modified)")

    def to_dict(self) -> dict[str, Any]:
        """The cage keys as plain types (what a cage file holds)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None, prefix: str = "") -> Cage:
        """Build a cage from a mapping; unknown keys are refused, naming ``source``."""
        if not isinstance(data, dict):
            raise InvalidInputError(
                source, prefix + "<root>", "a mapping of cage keys", type(data).__name__
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InvalidInputError(
                source,
                prefix + unknown[0],
                f"one of the cage keys {names}",
                f"unknown key(s) {unknown}",
            )
        missing = [k for k in ("dims_mm", "mic_positions_mm") if k not in data]
        if missing:
            raise InvalidInputError(source, prefix + missing[0], "a value", "nothing (missing key)")
        try:
            return cls(**data, source=source)
        except TypeError as exc:  # e.g. a list where a number belongs
            raise InvalidInputError(
                source, prefix + "<cage>", "values of the documented types", str(exc)
            ) from None

    def describe(self) -> dict[str, Any]:
        """Summary for ``info``: keys plus derived figures."""
        from napari_gerbil.physics import speed_of_sound_m_s

        return {
            "source": self.name,
            **self.to_dict(),
            "n_mics": self.n_mics,
            "speed_of_sound_m_s": round(speed_of_sound_m_s(self.temperature_c), 2),
        }

    def fingerprint(self) -> dict[str, Any]:
        """What a model must agree on with data: dims, microphones (mm), channel count."""
        return {"dims_mm": list(self.dims_mm), "mic_positions_mm": self.mic_positions_mm}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _float_array(value: Any, source: str | None, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError(source, key, "numbers", repr(value)) from None
    return arr


def _check_scalar(cage: Cage, key: str, lo: float, hi: float) -> None:
    value = getattr(cage, key)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise cage._fail(key, f"a number in {lo:g} .. {hi:g}", repr(value))
    if not (np.isfinite(value) and lo <= value <= hi):
        raise cage._fail(key, f"a number in {lo:g} .. {hi:g}", value)
    setattr(cage, key, float(value))


def _paper() -> dict[str, Any]:
    """The paper's cage as vocalocator fitted it (``room_configs/e1_1M.yaml``).

    571.5 x 355.6 x 368.3 mm; 4 sub-cardioid microphones (Avisoft CM16, p = 0.75) near
    the ceiling corners, 20.6 / 50.2 mm from the walls and 78.6 mm below the ceiling,
    aimed at the floor centre (the fitted file lists directions about 30 degrees off
    that line, with x and y swapped; the aim matters little for p = 0.75); frequency-flat
    absorption walls 0.147, floor 0.636, ceiling 0.942.

    Scattering 0.1, nearly specular: the fit ran pyroomacoustics' image sources without
    ray tracing, where the file's scattering (0.9) has no effect, so the fitted cage is
    in fact specular; real walls and bedding scatter some, by an amount nobody measured.
    That uncertainty is why the physics panel (:data:`PHYSICS_PANEL`) also reports
    ``paper-diffuse`` (scattering 0.9) and the harsh ``omni-corner`` cage.
    """
    mics = np.round(corner_mics_mm(DEFAULT_DIMS_MM, DEFAULT_MIC_INSET_MM, DEFAULT_MIC_DROP_MM), 5)
    return {
        "dims_mm": DEFAULT_DIMS_MM,
        "mic_positions_mm": mics.tolist(),
        "mic_orientations": _aimed_at_floor_centre(mics),
        "mic_pattern_p": 0.75,
        "absorption": {"walls": 0.147, "floor": 0.636, "ceiling": 0.942},
        "scattering": 0.1,
    }


def _aimed_at_floor_centre(mics_mm: np.ndarray) -> list[list[float]]:
    """Unit directions from each microphone to the floor centre (rounded)."""
    ray = -np.asarray(mics_mm, dtype=float)
    return np.round(ray / np.linalg.norm(ray, axis=1, keepdims=True), 4).tolist()


def _omni_corner() -> dict[str, Any]:
    """The former default: 600 x 400 x 350 mm, omni mics 25 mm from two walls, specular."""
    dims = (600.0, 400.0, 350.0)
    return {
        "dims_mm": dims,
        "mic_positions_mm": corner_mics_mm(dims).tolist(),
        "mic_pattern_p": 1.0,
        "absorption": preset_absorption("cage"),
        "scattering": 0.0,
    }


def _paper8() -> dict[str, Any]:
    """``paper`` with 4 more microphones mid-wall, 20 mm from the wall and 300 mm up."""
    paper = _paper()
    hx, hy = DEFAULT_DIMS_MM[0] / 2.0 - 20.0, DEFAULT_DIMS_MM[1] / 2.0 - 20.0
    extra = [[0.0, -hy, 300.0], [hx, 0.0, 300.0], [0.0, hy, 300.0], [-hx, 0.0, 300.0]]
    return {
        **paper,
        "mic_positions_mm": paper["mic_positions_mm"] + extra,
        "mic_orientations": paper["mic_orientations"]
        + [[0, 1, -1], [-1, 0, -1], [0, -1, -1], [1, 0, -1]],
    }


def _paper16() -> dict[str, Any]:
    """``paper8`` with 8 more microphones on the walls, 20 mm from the wall and 200 mm up.

    Two on each long wall (at a third of its length from each end) and two on each short
    wall (a quarter of its width from each corner), tilted 30 degrees down.
    """
    paper8 = _paper8()
    hx, hy = DEFAULT_DIMS_MM[0] / 2.0 - 20.0, DEFAULT_DIMS_MM[1] / 2.0 - 20.0
    x3, y4 = DEFAULT_DIMS_MM[0] / 6.0, DEFAULT_DIMS_MM[1] / 4.0
    extra = [[-x3, -hy, 200.0], [x3, -hy, 200.0], [hx, -y4, 200.0], [hx, y4, 200.0],
             [x3, hy, 200.0], [-x3, hy, 200.0], [-hx, y4, 200.0], [-hx, -y4, 200.0]]  # fmt: skip
    down = 0.577  # tan(30 deg)
    aims = [[0, 1, -down], [0, 1, -down], [-1, 0, -down], [-1, 0, -down],
            [0, -1, -down], [0, -1, -down], [1, 0, -down], [1, 0, -down]]  # fmt: skip
    return {
        **paper8,
        "mic_positions_mm": paper8["mic_positions_mm"] + extra,
        "mic_orientations": paper8["mic_orientations"] + aims,
    }


#: Built-in cages by name. ``paper`` (the default everywhere) is the paper's cage as
#: fitted by vocalocator; ``omni-corner`` the former default (omni microphones 25 mm
#: from two walls of a 600 x 400 x 350 mm cage, specular plastic walls), a harder
#: variant; ``paper-diffuse`` is ``paper`` with scattering 0.9; ``paper8`` is ``paper``
#: with 4 more microphones mid-wall, ``paper16`` with 8 more on the walls, 200 mm up.
BUILTIN_CAGES: dict[str, dict[str, Any]] = {
    "paper": _paper(),
    "omni-corner": _omni_corner(),
    "paper-diffuse": {**_paper(), "scattering": 0.9},
    "paper8": _paper8(),
    "paper16": _paper16(),
}
#: Built-in rigs of 4, 8 and 16 microphones in the paper's cage (``napari-gerbil cage plan``).
MIC_RIGS = ("paper", "paper8", "paper16")

#: The three acoustics every headline number is reported in: the true physics of a
#: user's cage is uncertain, and a method is only as good as its worst row.
PHYSICS_PANEL = ("paper", "omni-corner", "paper-diffuse")


def builtin_cage(name: str = "paper", absorption_preset: str | None = None) -> Cage:
    """A built-in cage by name, optionally with the absorption of a named preset."""
    if name not in BUILTIN_CAGES:
        raise InvalidInputError(
            None,
            "cage",
            f"a cage file or one of the built-in cages {sorted(BUILTIN_CAGES)}",
            repr(name),
        )
    data = dict(BUILTIN_CAGES[name])
    if absorption_preset is not None:
        data["absorption"] = preset_absorption(absorption_preset)
    return Cage(**data, source=f"builtin:{name}")


def load_cage(spec: str | os.PathLike | Cage | None = "paper") -> Cage:
    """A cage from a built-in name, a YAML/JSON file path, or a :class:`Cage` (returned).

    ``builtin:NAME`` always takes the built-in cage; a bare built-in name while the
    current folder holds an entry of that name is ambiguous and refused (``./NAME``
    takes the file).

    Raises
    ------
    InvalidInputError
        Unknown name, missing or malformed file; the message names the file and key.
    """
    if isinstance(spec, Cage):
        return spec
    if spec is None:
        return builtin_cage("paper")
    text = str(spec)
    if text.startswith("builtin:") and text[len("builtin:") :] in BUILTIN_CAGES:
        return builtin_cage(text[len("builtin:") :])  # the built-in, whatever is here
    if text in BUILTIN_CAGES:
        if os.path.lexists(text):  # a bare name next to a local file of that name
            raise InvalidInputError(
                text, "cage", "one cage",
                f"'{text}' names both the built-in cage and the local "
                f"{'folder' if os.path.isdir(text) else 'file'} ./{text}",
                hint=f"Pass ./{text} for the local file, or builtin:{text} for the "
                "built-in cage.",
            )  # fmt: skip
        return builtin_cage(text)
    path = Path(text)
    if not path.exists():
        raise InvalidInputError(
            text,
            "cage",
            f"a cage file (YAML) or one of the built-in cages {sorted(BUILTIN_CAGES)}",
            "no such file",
        )
    if not path.is_file():
        raise InvalidInputError(path, "<file>", "a regular cage file (YAML)", "not a regular file")
    data = load_yaml_file(path, "cage file")
    if not isinstance(data, dict):
        raise InvalidInputError(path, "<root>", "a mapping of cage keys", type(data).__name__)
    return Cage.from_dict(data, source=str(path))


def is_cage_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a cage file (YAML/JSON with a ``dims_mm`` key)."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml", ".json") or not p.is_file():
        return False
    try:
        data = load_yaml_file(p, "cage file")
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a cage file
        return False
    return isinstance(data, dict) and "dims_mm" in data and "mic_positions_mm" in data


def save_cage(cage: Cage, path: str | os.PathLike) -> None:
    """Write a cage file (YAML), atomically."""
    import yaml

    from napari_gerbil.io.atomic import atomic_write_text

    atomic_write_text(
        Path(path), yaml.safe_dump(cage.to_dict(), sort_keys=False, default_flow_style=None)
    )


def compare_geometry(
    expected: dict[str, Any],
    found: dict[str, Any],
    source: str | os.PathLike | None,
    what: str = "model",
    tolerance_mm: float = MIC_TOLERANCE_MM,
) -> None:
    """Refuse data whose cage differs from a model's: dims, microphone count and positions.

    Parameters
    ----------
    expected
        The model's ``dims_mm`` and ``mic_positions_mm`` (either may be None = unknown).
    found
        The data's values (either may be None = unknown: passes).
    source
        The data file (named in the error).
    """
    from napari_gerbil.errors import IncompatibleModelError

    e_dims, f_dims = expected.get("dims_mm"), found.get("dims_mm")
    if e_dims is not None and f_dims is not None:
        e, f = np.asarray(e_dims, float).reshape(-1), np.asarray(f_dims, float).reshape(-1)
        if e.shape != f.shape or np.abs(e - f).max() > tolerance_mm:
            raise IncompatibleModelError(
                source, "arena_dims_mm", f"the {what}'s cage {e.tolist()} mm", f"{f.tolist()} mm"
            )
    e_mics, f_mics = expected.get("mic_positions_mm"), found.get("mic_positions_mm")
    if e_mics is None or f_mics is None:
        return
    e, f = np.asarray(e_mics, float), np.asarray(f_mics, float)
    if e.shape != f.shape:
        raise IncompatibleModelError(
            source, "mic_positions_mm", f"{len(e)} microphones like the {what}", f"{len(f)}"
        )
    dist = np.linalg.norm(e - f, axis=1)
    if (dist > tolerance_mm).any():
        k = int(np.argmax(dist))
        raise IncompatibleModelError(
            source,
            f"mic_positions_mm[{k}]",
            f"within {tolerance_mm:g} mm of the {what}'s microphone {np.round(e[k], 1).tolist()}",
            f"{np.round(f[k], 1).tolist()} ({dist[k]:.1f} mm away)",
        )
