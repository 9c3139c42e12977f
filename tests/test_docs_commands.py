"""Every command the documentation shows parses with the real flag definitions.

Reads README.md and every docs/**/*.md present when the test runs, takes each `python main.py ...` /
`lgh-tf ...` and `python tools/<x>.py ...` command (fenced code blocks, with backslash
continuations joined, and inline code spans), and parses its flags: main.py's with a copy of the
absl flags main.py defines (flags/lgh_flags.py, absl's own), a tool's with the tool's own argparse
parser (taken from its main() just before it parses). An unknown or misspelled flag, a bad enum or
number, a missing --flagfile or a stray argument fails, naming the page, line and command.

Placeholders are allowed where a reader substitutes a value: a token `...`, and a value written
`<like this>`, `...` or in capitals (`--steps=N`, `--data_dir=DIR`): only the flag's name is
checked then. A tool that parses with
parse_known_args passes what it does not know on to main.py (tools/ablation.py), so those are
checked as main.py flags.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import importlib.util
import io
import os
import re
import shlex
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = re.compile(r"(?<![\w/.-])(?:python3?\s+(?:\./)?(main\.py|tools/[\w-]+\.py)|(lgh-tf))(?=\s|$)")
HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def pages() -> list[str]:
    found = [os.path.join(REPO, "README.md")]
    found += sorted(glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
    return [os.path.relpath(p, REPO) for p in found if os.path.isfile(p)]


def logical_lines(text: str):
    """(line number, text) of every code-block line (continuations joined) and every inline code
    span (a span may run over several lines of its paragraph)."""
    in_block, pending, start = False, "", 0
    paragraph = []  # (line number, line) of the prose being gathered

    def spans():
        joined = "\n".join(line for _, line in paragraph)
        for match in re.finditer(r"``(.+?)``|`([^`]+)`", joined, flags=re.S):
            number = paragraph[0][0] + joined.count("\n", 0, match.start())
            yield number, (match.group(1) or match.group(2)).replace("\n", " ")

    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith(("```", "~~~")):
            yield from spans()
            paragraph = []
            in_block = not in_block
            pending = ""
            continue
        if in_block:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line
            pending = ""
        elif line.strip():
            paragraph.append((number, line))
        else:
            yield from spans()
            paragraph = []
    yield from spans()


def commands(text: str):
    """(line number, program, arguments) of each documented command; program is 'main.py' or
    'tools/<x>.py' (lgh-tf is main.py)."""
    for number, line in logical_lines(text):
        for match in START.finditer(line):
            program = match.group(1) or "main.py"
            yield number, program, tokens(line[match.end():])


def tokens(text: str) -> list[str]:
    """The shell words of ``text`` up to the end of the command (a pipe, &&, ;, a redirection or a
    comment). A quote left open is the end of an enclosing one (`bash -c "... python main.py ..."`)."""
    while True:
        lexer = shlex.shlex(text, posix=True, punctuation_chars="|&;")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        args = []
        try:
            for token in lexer:
                if token and (token[0] in "|&;" or token.startswith((">", "2>", "<<"))):
                    break
                args.append(token)
            return args
        except ValueError as error:  # a quote left open
            cut = max(text.rfind('"'), text.rfind("'"))
            if cut < 0:
                return [f"<unparsable: {error}>"]
            text = text[:cut]


def is_placeholder(value: str) -> bool:
    """`...`, `<run dir>`, `N`, `DIR`: a value the reader fills in."""
    return (value in ("...", "…") or (value.startswith("<") and value.endswith(">")) or value.endswith("...")
            or re.fullmatch(r"[A-Z][A-Z_]*", value) is not None)


def split_placeholders(args):
    """(arguments to parse, flag names whose value is a placeholder)."""
    kept, names = [], []
    for arg in args:
        if arg in ("...", "…"):  # "and more flags"
            continue
        if is_placeholder(arg) and not arg.startswith("-"):  # a positional the reader fills in
            kept.append("placeholder")
            continue
        if arg.startswith("-") and "=" in arg and is_placeholder(arg.split("=", 1)[1]):
            names.append(arg.split("=", 1)[0])
            continue
        kept.append(arg)
    return kept, names


@pytest.fixture(scope="module")
def main_flags():
    from absl import app, flags

    import main  # noqa: F401  (defines the flags)

    app.define_help_flags()
    values = copy.deepcopy(flags.FLAGS)
    values.unparse_flags()
    return values


def check_main(values, args) -> str | None:
    """None when main.py would accept ``args``' flags, else absl's message."""
    from absl import flags

    args, names = split_placeholders(args)
    known = {name for name in values}
    for name in names + [a.split("=", 1)[0] for a in args if a.lstrip("-") in HELP_FLAGS]:
        bare = name.lstrip("-")
        if bare not in known and not (bare.startswith("no") and bare[2:] in known):
            return f"Unknown command line flag '{bare}'"
    args = [a for a in args if a.lstrip("-").split("=", 1)[0] not in HELP_FLAGS]
    values.unparse_flags()
    try:
        rest = values(["main.py", *args])
    except flags.Error as error:
        return str(error)
    finally:
        values.unparse_flags()
    if rest[1:]:
        return f"unexpected arguments {rest[1:]} (main.py takes flags only)"
    return None


class _Parser(Exception):
    def __init__(self, parser, known_only):
        super().__init__("parser reached")
        self.parser, self.known_only = parser, known_only


def tool_parser(path):
    """(the argparse parser of tools/<x>.py's main(), whether it parses with parse_known_args)."""
    spec = importlib.util.spec_from_file_location(f"_docs_tool_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in a tool look their module up while it loads
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise AssertionError(f"{path} has no main() whose argparse parser the docs test can read")

    def parse_args(self, *_, **__):
        raise _Parser(self, False)

    def parse_known_args(self, *_, **__):
        raise _Parser(self, True)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = parse_args, parse_known_args
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module.main()
    except _Parser as caught:
        return caught.parser, caught.known_only
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved
    raise AssertionError(f"{path}: main() returned without parsing arguments with argparse")


def check_tool(parser, known_only, args, main_values) -> str | None:
    args, names = split_placeholders(args)
    parser.allow_abbrev = False  # the docs spell flags out: an abbreviation breaks when a flag is added
    options = parser._option_string_actions
    for name in names:
        if name not in options:
            return f"unrecognized argument: {name}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if known_only:
                _, extra = argparse.ArgumentParser.parse_known_args(parser, args)
            else:
                argparse.ArgumentParser.parse_args(parser, args)
                extra = []
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    extra = [a for a in extra if a != "--"]
    if extra:  # passed on to main.py
        return check_main(main_values, extra)
    return None


def check_page(page, main_values, parsers):
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        text = f.read()
    problems, count = [], 0
    for number, program, args in commands(text):
        count += 1
        command = " ".join(["python", program, *args])
        if any(a.startswith("<unparsable") for a in args):
            problems.append(f"{page}:{number}: {command}")
            continue
        if program == "main.py":
            problem = check_main(main_values, args)
        else:
            path = os.path.join(REPO, program)
            if not os.path.isfile(path):
                problems.append(f"{page}:{number}: {command}: no such tool {program}")
                continue
            if program not in parsers:
                parsers[program] = tool_parser(path)
            problem = check_tool(*parsers[program], args, main_values)
        if problem:
            problems.append(f"{page}:{number}: {command}\n    -> {problem}")
    return problems, count


@pytest.fixture(scope="module")
def tool_parsers():
    return {}


@pytest.mark.parametrize("page", pages())
def test_documented_commands_parse(page, main_flags, tool_parsers, monkeypatch):
    monkeypatch.chdir(REPO)  # --flagfile=flags/... paths are the repository's
    problems, _ = check_page(page, main_flags, tool_parsers)
    assert not problems, "documented commands whose flags do not parse:\n" + "\n".join(problems)


def test_readme_shows_the_commands_a_newcomer_runs():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    found = {" ".join([program, *args]) for _, program, args in commands(text)}
    assert "main.py --mode=train" in found
    assert "main.py --mode=train --dataset=stb" in found
    assert any(c.startswith("main.py --mode=predict --image=examples/") for c in found), found


def test_a_misspelled_flag_is_caught(main_flags, tool_parsers, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    page = tmp_path / "page.md"
    page.write_text(
        "Run `python main.py --mode=train --batch_sise=8` and\n\n"
        "```bash\npython main.py --mode=eval \\\n    --checkpoint=<run> --datset=stb   # comment\n"
        "pip install -e . && lgh-tf --mode=predict --image=a.png --hand=both\n"
        "python tools/build_demo.py --stages=figure --num_example=3 > log.txt\n"
        "python tools/ablation.py --seeds=2 -- --batch_size=8 --stpes=3\n"
        "python main.py --mode=groups --checkpoint=runs/x --model_dir=...   # fine\n"
        "python tools/convert_torch_checkpoint.py <model.pth> OUT ...   # fine: placeholders\n"
        "python main.py --mode=train --steps=N ...   # fine\n```\n"
    )
    problems, count = check_page(str(page), main_flags, tool_parsers)
    assert count == 8
    text = "\n".join(problems)
    assert len(problems) == 5, text
    for expected in ("batch_sise", "datset", "hand=both", "num_example", "stpes"):
        assert expected in text
    assert ":4: python main.py --mode=eval --checkpoint=<run> --datset=stb\n" in text
