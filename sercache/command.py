"""What a stage's command line is, how a stage declares it, and how a command is parsed and run.

Each stage package declares its commands in its `commands` module (`STAGES`, in pipeline order), and the umbrella
`sercache` joins the packages' lists. A declaration is the stage's name, its line in `sercache --help` and a
loader: the command's options and code (torch, encoders) load only when it runs, so listing the stages stays
light. `python -m sercache.extract.cli` / `sercache.heads.cli` (what torchrun runs) parse
and run their own Command directly.
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from typing import Callable

from .errors import run_command


@dataclass(frozen=True)
class Command:
    """One stage's command line: what adds its options to a parser, and what runs the parsed namespace."""

    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str
    epilog: str = ""


@dataclass(frozen=True)
class Stage:
    """A registered stage: `load` returns its Command (importing the stage's code)."""

    name: str
    summary: str  # its line in `sercache --help`
    load: Callable[[], Command]
    aliases: tuple[str, ...] = ()  # console scripts that run the same parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs of a description or epilog; indented lines (examples, lists) stay as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks: list[str] = []  # paragraphs (joined) and indented lines (each its own block)
        for line in text.strip("\n").splitlines():
            prose = bool(line.strip()) and not line[:1].isspace()
            if prose and blocks and blocks[-1].strip() and not blocks[-1][:1].isspace():
                blocks[-1] += " " + line.strip()
            else:
                blocks.append(line.rstrip())
        return "\n".join(indent + block if block[:1].isspace() or not block else
                         textwrap.fill(block, width, initial_indent=indent, subsequent_indent=indent)
                         for block in blocks)


def build_parser(cmd: Command, prog: str) -> argparse.ArgumentParser:
    """The parser of a command; `prog` is how the user called it (`extract-features`, `sercache extract`)."""
    parser = argparse.ArgumentParser(prog=prog, description=cmd.description, epilog=cmd.epilog or None,
                                     formatter_class=HelpFormatter, allow_abbrev=False)
    cmd.configure(parser)
    return parser


def run(cmd: Command, argv: list[str] | None, prog: str) -> int:
    """Parse `argv` for a command and run it; input errors print `prog: error: ...` and return 2."""
    args = build_parser(cmd, prog).parse_args(argv)
    return run_command(prog, lambda: cmd.run(args))
