"""The machine block and the Markdown page every benchmark tool writes (``--markdown``).

A figure means little without the machine that produced it: ``machine_lines()`` names the CPU
(model, the vector/matrix flags that decide oneDNN's kernels), the cores, the GPU if any, the
Python, TensorFlow, Keras and PyTorch versions and the git commit. ``Capture`` tees what a tool
prints; ``write_markdown`` puts it under the machine block in ``docs/benchmarks/<tool>.md``:
Markdown tables (lines starting with ``|``) as they are, every other line in a log block.
No TensorFlow import here, so a machine without it still gets its block.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import io
import os
import pathlib
import platform
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from lgh_tf.files import portable_command, portable_path  # noqa: E402,F401  (pages name no machine)

# The CPU flags that change which kernels oneDNN / XLA / PyTorch pick.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """(model name with its family and model number, the CPU_FLAGS present) from
    /proc/cpuinfo; platform's answer elsewhere. A cloud host's name is often just "Intel(R) Xeon(R)
    Processor": the model number tells one generation from another."""
    model, flags, fields = platform.processor() or platform.machine(), set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                elif key in ("cpu family", "model"):
                    fields[key] = value.strip()
                if key == "" and flags:
                    break
    except OSError:
        pass
    if "model" in fields:  # not the clock: it changes from one reading to the next on many hosts
        model += f" (family {fields.get('cpu family', '?')} model {fields['model']})"
    return model, [flag for flag in CPU_FLAGS if flag in flags]


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files outside docs/ differ from it (the
    tools rewrite their tables and pictures in docs/ while they run: that is not other code)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)docs"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def gpu_names() -> list[str]:
    """The GPUs nvidia-smi lists (none without it)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_lines() -> list[str]:
    """The machine block: one Markdown list item per fact."""
    model, flags = cpu_model_and_flags()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpus = gpu_names()
    tensorflow = package_version("tensorflow")
    if tensorflow == "absent":
        tensorflow = package_version("tensorflow-cpu")
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores, flags: {' '.join(flags) or 'none of ' + '/'.join(CPU_FLAGS)}",
        f"- load average at the start: {load:.1f} (other jobs share these cores when it exceeds the core count)",
        f"- GPU: {'; '.join(gpus) if gpus else 'none'}",
        f"- Python {platform.python_version()}, TensorFlow {tensorflow}, Keras {package_version('keras')}, "
        f"PyTorch {package_version('torch')}",
        f"- git commit: {git_commit()}",
    ]


class Capture(io.TextIOBase):
    """Tees writes to the real stdout and keeps them (``with Capture() as captured: ...``)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.stream = sys.stdout

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def text(self) -> str:
        return "".join(self.parts)

    def __enter__(self) -> Capture:
        sys.stdout = self
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout = self.stream


def default_path(tool: str) -> pathlib.Path:
    return REPO / "docs" / "benchmarks" / f"{tool}.md"


def render(tool: str, output: str, argv: list[str] | None = None, note: str = "") -> str:
    """The page: title, command, machine block, then ``output`` (tables verbatim, the rest logged)."""
    command = " ".join(shlex.quote(a) for a in ["python", f"tools/{tool}.py", *portable_command(argv or [])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {tool}", "", f"Written by `tools/{tool}.py --markdown` at {when}:", "", "```", command, "```",
             "", "## Machine", "", *machine_lines(), ""]
    if note:
        lines += [note, ""]
    lines += ["## Result", ""]
    log: list[str] = []
    for line in output.splitlines():
        if line.startswith("|"):
            while log and not log[-1].strip():
                log.pop()
            if log:
                lines += ["```", *log, "```", ""]
                log = []
            lines.append(line)
        elif line.strip() or log:
            if lines[-1].startswith("|"):
                lines.append("")
            log.append(line)
    while log and not log[-1].strip():
        log.pop()
    if log:
        lines += ["```", *log, "```"]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(tool: str, output: str, path: str | os.PathLike = "", argv: list[str] | None = None,
                   note: str = "") -> pathlib.Path:
    """Writes ``render(...)`` to ``path`` (default docs/benchmarks/<tool>.md) via a temporary name."""
    target = pathlib.Path(path) if path else default_path(tool)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(render(tool, output, argv, note))
    os.replace(temporary, target)
    return target


def add_markdown_flag(parser) -> None:
    """``--markdown [PATH]``: also write the result page (default docs/benchmarks/<tool>.md)."""
    parser.add_argument("--markdown", nargs="?", const="-", default="",
                        help="also write the result as Markdown with the machine block "
                             "(default path docs/benchmarks/<tool>.md)")


def run_main(tool: str, main, argv: list[str] | None = None) -> int:
    """Runs a tool's ``main(argv)`` teeing what it prints; with ``--markdown [PATH]`` among the
    arguments (the tool's parser declares it with ``add_markdown_flag``), writes the page after."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    peek = argparse.ArgumentParser(add_help=False)
    add_markdown_flag(peek)
    markdown = peek.parse_known_args(argv)[0].markdown
    with Capture() as captured:
        code = main(argv)
    if markdown:
        path = write_markdown(tool, captured.text(), "" if markdown == "-" else markdown, argv)
        print(f"wrote {path}")
    return code or 0
