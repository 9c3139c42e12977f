"""Committed pages name no machine (issue 33): no absolute path of a work folder in docs/, the
READMEs or the shipped annotations, and the tools that write them make paths relative to the
checkout or put the placeholder RUN in their place (lgh_tf.files.portable_path)."""

import os
import re
import subprocess

import matplotlib.figure
from conftest import REPO

from lgh_tf import files, visualize

# The folders of the machines these pages were written on (and any user's home).
MACHINE_PATH = re.compile(r"(?<![\w.$~])/(?:work|tmp|home|root|Users|scratch)/")


def committed_pages():
    try:
        listed = subprocess.run(["git", "ls-files", "docs", "README.md", "saved_models", "examples"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        listed = [os.path.relpath(os.path.join(d, f), REPO) for d, _, fs in os.walk(REPO / "docs") for f in fs]
        listed.append("README.md")
    return [name for name in listed if name.endswith((".md", ".json", ".txt", ".csv", ".svg"))]


def test_committed_pages_name_no_machine_path():
    pages = committed_pages()
    assert "docs/ablation.json" in pages and "README.md" in pages
    found = [f"{name}:{number}: {line.strip()[:120]}" for name in pages
             for number, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1)
             if MACHINE_PATH.search(line)]
    assert not found, "\n".join(found)


def test_the_scan_finds_what_it_looks_for(tmp_path):
    for line in ("--runs_dir /work/runs/i25s", "(/tmp/base)", '"model_dir": "/home/me/run"', "/root/x"):
        assert MACHINE_PATH.search(line), line
    for line in ("--data_dir=/data/STB", "$OUT/gpu_logs/x.log", "RUN/k1_s0", "docs/images/x.png", "~/datasets/RHD"):
        assert not MACHINE_PATH.search(line), line


def test_portable_paths_and_commands(tmp_path):
    inside = os.path.join(str(REPO), "docs", "images", "x.png")
    assert files.portable_path(inside) == os.path.join("docs", "images", "x.png")
    assert files.portable_path("/work/runs/i25w/ablation/k1_s0") == "RUN/k1_s0"
    assert files.portable_path("runs/quick") == "runs/quick"  # relative: kept
    assert files.portable_path(str(tmp_path / "run" / "ckpt"), root=tmp_path) == os.path.join("run", "ckpt")
    assert files.portable_command(["--runs_dir", "/work/runs/i25s", "--checkpoint=/a/r1,/b/r2", "--steps=3",
                                   f"--out={inside}"]) == [
        "--runs_dir", "RUN/i25s", "--checkpoint=RUN/r1,RUN/r2", "--steps=3", "--out=docs/images/x.png"]


def test_picture_titles_name_no_machine_path(monkeypatch):
    """The selector trajectories and learning curves were titled with a run's absolute folder."""
    titles = []
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, text, **kwargs: titles.append(text))
    visualize.learning_curves_figure({"train": {"step": [1, 2], "loss": [2.0, 1.0]}, "eval": {}},
                                     "/work/runs/i25w/ablation/learned_s0: stage full, 2 steps")
    assert titles == ["RUN/learned_s0: stage full, 2 steps"]
    assert visualize.portable_title("softmax(theta) per joint, /tmp/x/run") == "softmax(theta) per joint, RUN/run"
    assert visualize.portable_title("3D/2D PCK, tau 0.1") == "3D/2D PCK, tau 0.1"


def test_benchmark_pages_name_no_machine_path():
    from conftest import load_tool

    page = load_tool("bench_report").render("bench_first_step", "checkouts: this (.)\n",
                                            ["--baseline", "/tmp/base", f"--markdown={REPO}/docs/b.md"])
    assert "python tools/bench_first_step.py --baseline RUN/base --markdown=docs/b.md" in page
    assert not MACHINE_PATH.search(page)
    # tools/ablation.py: tests/test_ablation.py (its command and model_dir entries)
