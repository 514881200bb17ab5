"""The one generator of command-line options: a config dataclass becomes argparse options and back.

Why: the Python API, the command line, config files and sweeps then share one definition per option,
so a new dataclass field is a new flag with the same name, help and allowed values everywhere.

Each field becomes `--field-name` (booleans: `--field-name/--no-field-name`; lists: one or more values,
space or comma separated, repeatable). Field metadata, all optional:

* `help`: the help text (the default is appended once, by this module);
* `choices`: allowed values; pass the registry that defines them (e.g. STORAGE_DTYPES), never a copy;
* `group`: the help section the option is listed under;
* `flag`: the option name when it is not the field name (`--from` for a field `source`);
* `positional`: a positional argument instead of an option.

Options that several stages share are declared once here, e.g. `threads_field()` (with `apply_threads`).

Options default to `argparse.SUPPRESS`, so the parsed namespace holds exactly what was typed:
`given()` can tell `--loss ce` from no `--loss` even though ce is the default, and `from_namespace()`
lets typed values win over a config file (its `base`) and the config file over the dataclass defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from .errors import SercacheError

T = TypeVar("T")

_SCALARS = (int, float, str, Path)
_EMPTY = ("", None, (), [])


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
                            group: str | None = None) -> None:
    """Add one option (or positional argument) per field of the dataclass `cls`.

    `group` lists the fields under that help section unless a field names its own `group`.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        meta = field.metadata
        target = _group(parser, meta.get("group") or group)
        kind, item = _kind(hints[field.name], _default(field))
        options: dict[str, Any] = {"help": _help(meta.get("help", ""), kind, _default(field))}
        choices = tuple(meta["choices"]) if meta.get("choices") else None
        if kind is bool:
            options.update(action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif kind is list:
            options.update(action=_Extend, nargs="+", type=_list_item(item, choices), default=argparse.SUPPRESS)
            if choices:
                options["metavar"] = "{" + ",".join(map(str, choices)) + "}"
        else:
            options.update(type=item, default=argparse.SUPPRESS)
            if choices:
                options["choices"] = choices
        if meta.get("positional"):
            _positional(target, field, options)
            continue
        options["dest"] = field.name
        if _default(field) is dataclasses.MISSING:
            options["required"] = True
        target.add_argument("--" + meta.get("flag", field.name).replace("_", "-"), **options)


def given(namespace: argparse.Namespace, cls: type) -> set[str]:
    """Names of the fields of `cls` that were typed on the command line."""
    return {f.name for f in dataclasses.fields(cls)} & set(vars(namespace))


def from_namespace(cls: type[T], namespace: argparse.Namespace, base: Mapping[str, Any] | None = None,
                   **overrides: Any) -> T:
    """Build `cls` from the dataclass defaults, then `base` (e.g. a config file), then what was typed."""
    values = dict(base or {})
    values.update({name: getattr(namespace, name) for name in given(namespace, cls)})
    values.update(overrides)
    return cls(**values)


def boolean_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The --x/--no-x options of a parser (used by the tests that walk every command)."""
    return [a for a in parser._actions if isinstance(a, argparse.BooleanOptionalAction)]


# ------------------------------------------------------------------------------------ shared options
THREADS_HELP = "torch CPU threads (0: torch default)"  # train's HeadConfig.threads says the same


def threads_field(group: str | None = None) -> Any:
    """The `--threads N` field of every stage that computes: torch intra-op threads, 0 = torch's default.
    The stage calls `apply_threads` with it before any work."""
    return dataclasses.field(default=0, metadata={"help": THREADS_HELP, **({"group": group} if group else {})})


def apply_threads(threads: int) -> None:
    """`torch.set_num_threads(threads)` when threads > 0; 0 leaves torch's default."""
    if threads < 0:
        raise SercacheError(f"--threads {threads}: must be >= 0 (0: torch default)")
    if threads:
        import torch  # only a stage that computes calls this; `sercache --help` must not load torch

        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------- details
class _Extend(argparse.Action):
    """Each value is already a list (comma-split and converted); repeated flags add up."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            items.extend(value if isinstance(value, list) else [value])
        setattr(namespace, self.dest, items)


def _list_item(item: Callable[[str], Any], choices: tuple | None) -> Callable[[str], list]:
    def convert(text: str) -> list:
        values = [item(part.strip()) for part in text.split(",") if part.strip()]
        for value in values:
            if choices and value not in choices:
                raise argparse.ArgumentTypeError(
                    f"invalid choice: {value!r} (choose from {', '.join(map(repr, choices))})")
        return values

    convert.__name__ = getattr(item, "__name__", "value")
    return convert


def _positional(target, field: dataclasses.Field, options: dict[str, Any]) -> None:
    default = _default(field)
    options.pop("required", None)
    if options.get("action") is _Extend:
        options["nargs"] = "+" if default is dataclasses.MISSING else "*"
    elif default is not dataclasses.MISSING:
        options["nargs"] = "?"
    # a positional's default is its value when it is left out
    options["default"] = None if default is dataclasses.MISSING else default
    target.add_argument(field.name, **options)


def _group(parser: argparse.ArgumentParser, title: str | None):
    if not title:
        return parser
    for existing in parser._action_groups:
        if existing.title == title:
            return existing
    return parser.add_argument_group(title)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _kind(hint: Any, default: Any) -> tuple[type, Callable[[str], Any]]:
    """(bool | list | scalar, converter of one value) for a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _kind(args[0], default) if args else (str, str)
    if hint is bool:
        return bool, bool
    if hint in (list, tuple) or origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = args[0] if args else (type(default[0]) if isinstance(default, (list, tuple)) and default else str)
        return list, item if item in _SCALARS else str
    return (hint, hint) if hint in _SCALARS else (str, str)


def _help(text: str, kind: type, default: Any) -> str:
    text = text.replace("%", "%%")
    if "(default" in text or default is dataclasses.MISSING or default in _EMPTY or (kind is bool and not text):
        return text
    shown = ("on" if default else "off") if kind is bool else default
    return f"{text} (default: {shown})".strip()
