"""tools/bench_report.py: the machine block and the Markdown page of the benchmark tools."""

from conftest import load_tool


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
