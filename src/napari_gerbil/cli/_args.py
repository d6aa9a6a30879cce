"""Argument types that refuse nonsense numbers at parse time (one line, exit status 2).

``argparse`` prints ``napari-gerbil CMD: error: argument --opt: MESSAGE``; the
messages below say what was expected and what was found.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

#: Seeds are fed to numpy's and torch's generators: unsigned 32-bit.
MAX_SEED = 2**32 - 1


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {name}, found {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, found {text!r}")
    return value


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (either bound may be None)."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if (low is not None and value < low) or (high is not None and value > high):
            lo = "-inf" if low is None else str(low)
            hi = "inf" if high is None else str(high)
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], found {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """A finite number in the interval (bounds open or closed; None = unbounded)."""

    def parse(text: str) -> float:
        value = float(_number(text, float))
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high:
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}"
            interval += ")" if high_open or high is None else "]"
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, found {text}")
        return value

    parse.__name__ = "number"
    return parse


#: Common option types.
positive_int = int_range(1)
nonnegative_int = int_range(0)
seed = int_range(0, MAX_SEED)
positive_float = float_range(0.0, low_open=True)
nonnegative_float = float_range(0.0)
finite_float = float_range()
probability_open = float_range(0.0, 1.0, low_open=True, high_open=True)
probability = float_range(0.0, 1.0)


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """Add ``--overwrite`` (replace an existing output; see docs/safety.md)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (never an input, never a reviewed session)",
    )


class UniqueValues(argparse.Action):
    """A list option whose values must all differ (paths compared after resolving links).

    ``--sessions S S`` would count the same calls twice; ``--animal-names a a`` would
    give two tracks one name. Refused at parse time, naming the repeated value.
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        """Store ``values`` once none repeats; else exit with a one-line error."""
        seen: set[str] = set()
        for value in values or []:
            key = str(value.resolve()) if isinstance(value, Path) else str(value)
            if key in seen:
                raise argparse.ArgumentError(
                    self, f"expected each value once, found {str(value)!r} more than once"
                )
            seen.add(key)
        setattr(namespace, self.dest, values)
