"""Build argparse options from a config dataclass, so the CLI and the Python API share one definition.

Each field becomes `--field-name`; its help text is the field's `metadata["help"]`, choices come
from `metadata["choices"]`. Booleans become `--flag/--no-flag`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        default = None if required else (
            field.default if field.default is not dataclasses.MISSING else field.default_factory())
        kind = hints[field.name]
        options: dict[str, Any] = {"help": field.metadata.get("help", ""), "dest": field.name}
        if "choices" in field.metadata:
            options["choices"] = field.metadata["choices"]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **options)
            continue
        base = _scalar_type(kind)
        if required:
            options["required"] = True
        else:
            options["default"] = default
            options["help"] += f" (default: {default})"
        parser.add_argument(flag, type=base, **options)


def _scalar_type(kind: Any):
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:
        return _scalar_type(args[0])
    return kind if kind in (int, float, str) else str


def from_namespace(cls: type[T], namespace: argparse.Namespace, **overrides: Any) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(namespace).items() if k in names}
    values.update(overrides)
    return cls(**values)
