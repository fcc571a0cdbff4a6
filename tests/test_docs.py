"""Every `s2s ...` command shown in README.md, docs/ and bench/README.md parses: the
command exists and so does each option, with a valid choice where it takes one."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def shown_commands() -> list[tuple[str, str]]:
    """(page:line, command) for every s2s command in a fenced block."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            first_line = text[: block.start(1)].count("\n") + 1
            for offset, line in enumerate(block.group(1).splitlines()):
                for part in re.split(r"&&|\|\||;|\|", line):
                    words = part.strip().removeprefix("$ ").strip()
                    if words.startswith("s2s ") or words == "s2s":
                        found.append((f"{page.relative_to(ROOT)}:{first_line + offset}", words))
    return found


def check(command: str) -> None:
    args = shlex.split(command, comments=True)[1:]
    group: click.Group = main
    while args and args[0].startswith("-"):  # the group's own options (-v)
        assert any(args[0] in p.opts for p in group.params), f"s2s has no option {args[0]}"
        args = args[1:]
    if not args:
        return
    sub = group.get_command(click.Context(group), args[0])
    assert sub is not None, f"no command {args[0]!r}"
    options = {name: p for p in sub.params if isinstance(p, click.Option) for name in (*p.opts, *p.secondary_opts)}
    options["--help"] = click.Option(["--help"], is_flag=True)
    rest = args[1:]
    for i, word in enumerate(rest):
        if not word.startswith("-") or word == "-":
            continue
        name, _, inline = word.partition("=")
        assert name in options, f"s2s {args[0]} has no option {name}"
        option = options[name]
        value = inline or (rest[i + 1] if i + 1 < len(rest) and not option.is_flag else None)
        if isinstance(option.type, click.Choice) and value is not None:
            assert value in option.type.choices, f"{name} {value}: not one of {option.type.choices}"


COMMANDS = shown_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 20 and {c.split()[1] for _, c in COMMANDS if len(c.split()) > 1} >= {
        "run", "train", "translate", "score", "subtitle", "average", "plot", "status"}


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shown_command_parses(where: str, command: str) -> None:
    check(command)


def test_the_check_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError, match="no option --beam"):
        check("s2s translate --run RUN --beam 5")
    with pytest.raises(AssertionError, match="no command"):
        check("s2s transalte CONFIG")
    with pytest.raises(AssertionError, match="not one of"):
        check("s2s translate --run RUN --quantize int4")
