"""The one configuration system: typed dataclasses saved as YAML (or JSON).

Every configurable part of napari-gerbil (simulation, network, training, detection)
is a dataclass deriving from :class:`Config`. A config file is the dataclass's fields
as a YAML mapping; nested dataclasses are nested mappings. Unknown keys and values of
the wrong type are rejected with an :class:`~napari_gerbil.errors.InvalidInputError`
that names the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text

C = TypeVar("C", bound="Config")

#: Largest YAML/JSON file a user hands us (a cage, a config): real ones are a few kB.
MAX_YAML_BYTES = 1_000_000
#: Most nodes a YAML document may expand to, aliases counted at every use (an "alias
#: bomb" of a few hundred bytes expands to billions of nodes).
MAX_YAML_NODES = 200_000


class _LimitedLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts nodes as expanded by aliases and stops at a limit."""

    def __init__(self, stream: str, max_nodes: int) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._max_nodes = max_nodes

    def compose_node(self, parent: Any, index: Any) -> Any:
        node = super().compose_node(parent, index)
        if id(node) not in self._sizes:
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._sizes.get(id(c), 1) for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(
                    self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
                )
            else:
                size = 1
            self._sizes[id(node)] = size
            if size > self._max_nodes:
                raise yaml.YAMLError(
                    f"more than {self._max_nodes} values once aliases are expanded (an alias bomb?)"
                )
        return node


def load_yaml_file(
    path: str | os.PathLike,
    what: str = "YAML/JSON file",
    *,
    max_bytes: int = MAX_YAML_BYTES,
    max_nodes: int = MAX_YAML_NODES,
) -> Any:
    """Parse a user's YAML (or JSON) file with a size and an alias-expansion limit.

    Parameters
    ----------
    path
        The file.
    what
        What it should be, for the message (e.g. ``"cage file"``).
    max_bytes, max_nodes
        Largest file, and most values after expanding aliases.

    Raises
    ------
    InvalidInputError
        Missing, too large, not UTF-8, not YAML, or expanding past ``max_nodes``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidInputError(path, "<file>", f"an existing {what}", "no such file") from None
    if size > max_bytes:
        raise InvalidInputError(
            path, "<file>", f"a {what} of at most {max_bytes} bytes", f"{size} bytes"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise InvalidInputError(
                path, "<file>", f"a {what} of at most {max_bytes} bytes", "a larger file"
            )
        loader = _LimitedLoader(raw.decode("utf-8"), max_nodes)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(path, "<file>", f"valid YAML (a {what})", first) from None


def _convert(value: Any, tp: Any, source: str | None, key: str) -> Any:
    """Convert a plain YAML value to the annotated type ``tp`` (dataclasses, tuples)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise InvalidInputError(source, key, "a mapping", repr(value))
        return tp.from_dict(value, source=source, prefix=f"{key}.")  # type: ignore[attr-defined]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], source, key) if len(args) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(source, key, "a list", repr(value))
        items = typing.get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis:
            return tuple(_convert(v, items[0], source, key) for v in value)
        if len(items) != len(value):
            raise InvalidInputError(source, key, f"a list of {len(items)} values", repr(value))
        return tuple(_convert(v, a, source, key) for v, a in zip(value, items, strict=True))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise InvalidInputError(source, key, tp.__name__, f"{value!r} ({type(value).__name__})")
    return value


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


@dataclasses.dataclass
class Config:
    """Base class of all configuration dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """The config as plain Python types (YAML/JSON serializable)."""
        return _plain(self)

    @classmethod
    def from_dict(
        cls: type[C], data: dict[str, Any], source: str | None = None, prefix: str = ""
    ) -> C:
        """Build the config from a mapping, rejecting unknown keys and wrong types."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(
                source,
                prefix + unknown[0],
                f"one of the {cls.__name__} keys {sorted(names)}",
                f"unknown key(s) {unknown}",
            )
        kwargs = {k: _convert(v, hints[k], source, prefix + k) for k, v in data.items()}
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        """Read a YAML or JSON config file."""
        path = Path(path)
        data = load_yaml_file(path, "config file") or {}
        if not isinstance(data, dict):
            raise InvalidInputError(path, "<root>", "a mapping", type(data).__name__)
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as YAML (JSON if the suffix is ``.json``), atomically."""
        path = Path(path)
        if path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2)
        else:
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write_text(path, text)

    def digest(self) -> str:
        """Short SHA-256 of the config's canonical JSON (for provenance)."""
        canon = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(canon).hexdigest()[:16]
