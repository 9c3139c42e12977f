"""tools/bench_report.py: the machine block and the Markdown page of the benchmark tools."""

import subprocess

from conftest import load_tool

bench_report = load_tool("bench_report")


def test_page_keeps_tables_and_fences_the_log(tmp_path):
    report = load_tool("bench_report")
    output = "progress 1\n\n| a | b |\n|---|---|\n| 1 | 2 |\nnote after\n"
    path = report.write_markdown("bench_x", output, tmp_path / "x.md", ["--steps", "3"])
    text = path.read_text()
    assert "python tools/bench_x.py --steps 3" in text
    assert "## Machine" in text and "- CPU: " in text and "TensorFlow " in text and "git commit: " in text
    result = text.split("## Result\n", 1)[1]
    assert result == "\n```\nprogress 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nnote after\n```\n"
    assert not (tmp_path / "x.md.tmp").exists()


def test_run_main_writes_the_page_only_when_asked(tmp_path, capsys):
    report = load_tool("bench_report")

    def main(argv):
        print("| x |\n|---|\n| 7 |")
        return 0

    target = tmp_path / "page.md"
    assert report.run_main("bench_y", main, ["--markdown", str(target)]) == 0
    assert "| 7 |" in target.read_text()
    assert report.run_main("bench_y", main, []) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]


def test_the_commit_is_dirty_when_code_differs_not_when_a_tool_rewrote_its_docs(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "table.md").write_text("a\n")
    (tmp_path / "tool.py").write_text("a = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(bench_report, "REPO", str(tmp_path))
    commit = bench_report.git_commit()
    assert len(commit) >= 7 and "+dirty" not in commit
    (tmp_path / "docs" / "table.md").write_text("b\n")  # what a running tool writes
    assert bench_report.git_commit() == commit
    (tmp_path / "tool.py").write_text("a = 2\n")
    assert bench_report.git_commit() == commit + "+dirty"
