"""One base for every configuration dataclass in human3d.

A config is a ``@dataclass`` that subclasses :class:`Config` and documents each field with a docstring right
under it (nerfstudio's habit). The base gives every config the same behaviour (diffusers' ``register_to_config``
habit):

* validation in ``__post_init__`` (subclasses override :meth:`Config.validate` and raise ``InvalidInputError``);
* composition: a field whose type is another :class:`Config` is a component (``NerfConfig.run``,
  ``NerfConfig.field``, ...); dicts given for it are turned into the component;
* ``replace(**changes)`` with dotted names for components (``cfg.replace(**{"run.max_steps": 100})``);
* ``to_dict()`` (nested, JSON-able) and a **strict** ``from_dict()`` that names an unknown key;
* ``with_assignments(["run.max_steps=100", "field.hidden_dim=32"])``: the CLI's ``--set key=value`` (values are
  JSON: numbers, ``true``/``false``, ``null``, ``[..]`` lists; anything else is a string);
* ``field_docs()``: the dotted field names with their docstrings, for ``--help``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import textwrap
import types
import typing
from functools import lru_cache
from typing import Any, Iterable, Sequence, TypeVar

from human3d.errors import InvalidInputError

__all__ = ["Config", "is_config_type", "parse_value", "from_preset"]

C = TypeVar("C", bound="Config")


def is_config_type(tp: Any) -> bool:
    """True when ``tp`` is a :class:`Config` subclass (a component config)."""
    return isinstance(tp, type) and issubclass(tp, Config)


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _allowed_types(hint: Any) -> tuple[set[type], bool]:
    """The plain types a field's type hint admits, and whether it admits None."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: set[type] = set()
        optional = False
        for arg in typing.get_args(hint):
            if arg is type(None):
                optional = True
            else:
                sub, opt = _allowed_types(arg)
                out |= sub
                optional |= opt
        return out, optional
    if origin is not None:
        return {origin}, False
    if hint is Any:
        return set(), True
    return ({hint} if isinstance(hint, type) else set()), False


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Turn a JSON-ish ``value`` into what ``hint`` expects (lists -> tuples, ints -> floats), or raise."""
    allowed, optional = _allowed_types(hint)
    if value is None:
        if optional or not allowed:
            return None
        raise InvalidInputError(f"{where}: expected {_type_names(allowed)}, got null/None")
    if not allowed:  # Any
        return value
    if isinstance(value, list):
        value = _deep_tuple(value)
    if tuple in allowed and isinstance(value, tuple):
        return value
    if bool in allowed and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # bool is an int subclass: refuse it for numbers
        raise InvalidInputError(f"{where}: expected {_type_names(allowed)}, got the boolean {value}")
    if int in allowed and isinstance(value, int):
        return value
    if float in allowed and isinstance(value, (int, float)):
        return float(value)
    if int in allowed and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if str in allowed and isinstance(value, str):
        return value
    if any(isinstance(value, t) for t in allowed):
        return value
    raise InvalidInputError(f"{where}: expected {_type_names(allowed)}, got {type(value).__name__} {value!r}")


def _type_names(allowed: set[type]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", tuple: "a list"}
    return " or ".join(sorted(names.get(t, t.__name__) for t in allowed)) or "a value"


def _deep_tuple(v: Any) -> Any:
    return tuple(_deep_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v


def _deep_list(v: Any) -> Any:
    return [_deep_list(x) for x in v] if isinstance(v, (list, tuple)) else v


@dataclasses.dataclass
class Config:
    """Base of every config dataclass (see the module docstring). Subclasses are ``@dataclass``es."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            hint = hints.get(f.name, Any)
            value = getattr(self, f.name)
            where = f"{type(self).__name__}.{f.name}"
            if is_config_type(hint):
                if isinstance(value, dict):
                    value = hint.from_dict(value, where=where)
                elif not isinstance(value, hint):
                    raise InvalidInputError(f"{where}: expected a {hint.__name__} or a dict, got {type(value).__name__}")
            else:
                value = _coerce(value, hint, where)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Raise ``InvalidInputError`` naming the field when a value is out of range (override in subclasses)."""

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied; dotted names reach into components (``"run.max_steps"``)."""
        return self._replace(changes, "")

    def _replace(self: C, changes: dict[str, Any], prefix: str) -> C:
        direct: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        names = self.field_names()
        hints = _hints(type(self))
        for key, value in changes.items():
            head, _, rest = key.partition(".")
            if head not in names or (rest and not is_config_type(hints.get(head))):
                raise InvalidInputError(_unknown(type(self), prefix + key, [prefix + n for n in self.dotted_names()]))
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                direct[head] = value
        for head, sub in nested.items():
            base = direct.pop(head, getattr(self, head))
            if isinstance(base, dict):
                base = hints[head].from_dict(base)
            direct[head] = base._replace(sub, f"{prefix}{head}.")
        return dataclasses.replace(self, **direct)

    def with_assignments(self: C, assignments: Iterable[str], option: str = "--set") -> C:
        """Apply ``key=value`` strings (the CLI's ``--set``); values are parsed as JSON, else taken as strings."""
        changes: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = str(item).partition("=")
            if not sep or not key.strip():
                raise InvalidInputError(f"{option}: expected key=value (e.g. run.max_steps=100), got '{item}'")
            changes[key.strip()] = parse_value(raw.strip())
        return self.replace(**changes)

    # ----------------------------------------------------------------------------------------- serialising
    def to_dict(self) -> dict:
        """Nested dict of plain JSON types (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Config) else _deep_list(v)
        return out

    @classmethod
    def from_dict(cls: type[C], d: dict, where: str | None = None) -> C:
        """Build from :meth:`to_dict`'s output; an unknown key is an error that names it."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise InvalidInputError(f"{where}: expected a JSON object, got {type(d).__name__}")
        names = cls.field_names()
        for key in d:
            if key not in names:
                raise InvalidInputError(_unknown(cls, f"{where}.{key}" if where != cls.__name__ else key, names))
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def flat(self) -> dict[str, Any]:
        """``{dotted name: value}`` over this config and its components."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Config):
                out.update({f"{f.name}.{k}": x for k, x in v.flat().items()})
            else:
                out[f.name] = v
        return out

    def diff(self, other: "Config") -> dict[str, tuple[Any, Any]]:
        """``{dotted name: (self's value, other's value)}`` where the two differ."""
        a, b = self.flat(), other.flat()
        return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}

    @classmethod
    def dotted_names(cls) -> list[str]:
        return list(cls.field_docs())

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """``{dotted name: docstring}`` for every field, components included (in declaration order)."""
        out: dict[str, str] = {}
        hints = _hints(cls)
        docs = _own_field_docs(cls)
        for f in dataclasses.fields(cls):
            hint = hints.get(f.name)
            if is_config_type(hint):
                out.update({f"{f.name}.{k}": v for k, v in hint.field_docs().items()})
            else:
                out[f.name] = docs.get(f.name, "")
        return out

    @classmethod
    def help_text(cls, defaults: "Config | None" = None, width: int = 100) -> str:
        """A plain-text table of the dotted fields, their values in ``defaults`` and their docstrings."""
        values = (defaults or cls()).flat()
        lines = []
        for name, doc in cls.field_docs().items():
            lines.append(f"{name} = {json.dumps(_deep_list(values.get(name)))}")
            if doc:
                lines.extend(textwrap.wrap(" ".join(doc.split()), width=width, initial_indent="    ",
                                           subsequent_indent="    "))  # fmt: skip
        return "\n".join(lines)


def from_preset(config_cls: type[C], presets: dict[str, dict], name: str, overrides: dict[str, Any]) -> C:
    """``config_cls()`` with the preset ``presets[name]`` (dotted names) and then ``overrides`` applied."""
    if name not in presets:
        raise InvalidInputError(f"preset: expected one of {sorted(presets)}, got '{name}'")
    return config_cls().replace(**{**presets[name], **overrides})


def parse_value(raw: str) -> Any:
    """``--set`` value: JSON (``3``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``"x"``), else the raw string;
    ``none`` is accepted for null."""
    if raw.lower() == "none":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _unknown(cls: type, key: str, known: Sequence[str]) -> str:
    import difflib

    if len(known) <= 12:
        return f"{cls.__name__}: unknown key '{key}' (known: {', '.join(known)})"
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{cls.__name__}: unknown key '{key}' ({hint}the train command's --help lists every field)"


@lru_cache(maxsize=None)
def _own_field_docs(cls: type) -> dict[str, str]:
    """Docstrings written right under each field in the class bodies of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):  # fmt: skip
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs
