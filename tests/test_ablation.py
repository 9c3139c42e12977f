"""tools/ablation.py and the adjusted Rand index it reports."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO, load_tool, run_main, selector_training

from lgh_tf.evaluation.grouping import adjusted_rand_index
from lgh_tf.visualize import groups_to_assignment

ablation = load_tool("ablation")


def test_adjusted_rand_index_hand_computed():
    # Contingency [[2, 1, 0], [0, 1, 2]]: index 2, rows 3 + 3 = 6, columns 1 + 1 + 1 = 3 pairs,
    # E = 6 * 3 / C(6, 2) = 1.2, M = 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 8 / 33.
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(8 / 33)
    # scikit-learn's documented example: 0.57 (= 4 / 7).
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    # The group numbering does not matter; a symmetric measure.
    assert adjusted_rand_index([0, 0, 1, 1, 2], [2, 2, 0, 0, 1]) == 1.0
    assert adjusted_rand_index([0, 1, 1, 2], [1, 1, 0, 2]) == adjusted_rand_index([1, 1, 0, 2], [0, 1, 1, 2])
    # Worse than chance is negative: every pair together in one labeling is apart in the other.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand_index([5, 5, 5], [1, 1, 1]) == 1.0  # both trivial and equal
    with pytest.raises(ValueError, match="same length"):
        adjusted_rand_index([0, 1], [0, 1, 2])


def test_budget_scales_steps_in_whole_checkpoint_intervals():
    assert ablation.scaled_steps(1.0, 300, 400, 100) == ((300, 100), (400, 100))
    assert ablation.scaled_steps(10.0, 300, 400, 100) == ((3000, 100), (4000, 100))
    assert ablation.scaled_steps(0.25, 300, 400, 100) == ((75, 75), (100, 100))
    assert ablation.scaled_steps(0.3, 300, 450, 100) == ((90, 90), (200, 100))  # 135 -> 2 intervals
    assert ablation.scaled_steps(0.001, 300, 400, 100) == ((0, 1), (1, 1))  # no stage 1, >= 1 step


def test_stage1_budget_scales_stage_1_alone():
    assert ablation.scaled_steps(3.0, 2000, 1000, 100, stage1_budget=1.0) == ((2000, 100), (3000, 100))
    assert ablation.scaled_steps(3.0, 2000, 1000, 100, stage1_budget=0.0) == ((0, 1), (3000, 100))


def test_tables_of_unfinished_seeds_and_agreement_with_the_skeleton(tmp_path):
    """The table written after each run: seeds with every configuration count as complete; the
    learned groups are compared with the finger-level and the manual groupings (hand computed)."""
    fingers = [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]
    manual = [[1, 2, 3, 4], [5, 6, 7, 8], [0, *range(9, 21)]]
    figures = {"mean_epe_mm": 20.0, "median_epe_mm": 18.0, "auc_20_50": 0.5, "epe_2d_px": 3.0}
    runs = [{"config": "k1", "seed": 0, "groups": [list(range(21))], "figures": figures},
            {"config": "learned_fusion", "seed": 0, "groups": fingers, "figures": figures},
            {"config": "k1", "seed": 1, "groups": [list(range(21))], "figures": figures},
            {"config": "learned_fusion", "seed": 1, "groups": manual, "figures": figures}]
    args = ablation.argparse.Namespace(
        names=["k1", "learned_fusion"], synthetic_world="realistic", budget=3.0, stage1_budget=1.0,
        seeds=3, synthetic_seed=0, command="python tools/ablation.py --seeds=3", picture="g.png",
        machine={"cpu": "CPU X", "cores": 2, "tensorflow": "2.21", "keras": "3.15", "commit": "abc"})
    for run in runs:
        run["commit"] = "abc" if run["seed"] == 0 else "def"
    table = ablation.markdown(runs, args, ((2000, 100), (3000, 100)), 45)
    assert "complete comparisons: [0, 1] of 3 asked" in table and "realistic world" in table
    assert "CPU X, 2 cores" in table and "commits that trained the runs: abc, def" in table
    assert "| learned_fusion seed 1 | " in table and " | def |" in table
    assert "`python tools/ablation.py --seeds=3`" in table
    finger_labels = groups_to_assignment(fingers)
    manual_labels = groups_to_assignment(manual)
    by_finger = [1.0, adjusted_rand_index(manual_labels, finger_labels)]
    by_manual = [adjusted_rand_index(finger_labels, manual_labels), 1.0]
    mean_sd = [f"{sum(v) / 2:.3f} ± {abs(v[0] - v[1]) / 2 ** 0.5:.3f}" for v in (by_finger, by_manual)]
    assert f"| learned_fusion | {mean_sd[0]} | {mean_sd[1]} | 2 |" in table
    assert "![groups](g.png)" in table
    partial = ablation.markdown(runs[:3], args, ((2000, 100), (3000, 100)), 45)
    assert "complete comparisons: [0] of 3 asked" in partial
    # With a learned K (no fusion), Table 3: the baseline first, then K.
    args.names = ["k1", "learned_fusion", "k2"]
    k2 = [{"config": "k2", "seed": s, "groups": [list(range(10)), list(range(10, 21))], "figures": figures,
           "commit": "abc"} for s in (0, 1)]
    with_k2 = ablation.markdown(runs + k2, args, ((2000, 100), (3000, 100)), 45)
    section = with_k2.split("## Table 3: number of groups (learned, no fusion)")[1].split("##")[0]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| ") and "#Group" not in line]
    assert rows == ["| Baseline", "| 2"]


def test_budget_scales_tau_annealing_with_stage_2():
    # tau reaches each value at the same fraction of stage 2 whatever the budget.
    assert ablation.scaled_temperature_every(12, 800, 800) == 12
    assert ablation.scaled_temperature_every(12, 800, 400) == 6
    assert ablation.scaled_temperature_every(12, 800, 8000) == 120
    assert ablation.scaled_temperature_every(12, 800, 10) == 1  # at least one step


def test_align_groups_matches_a_reference_and_keeps_the_partition():
    from lgh_tf.evaluation.grouping import align_groups

    # The same partition in another branch order comes back in the reference's order.
    assert align_groups([[3, 4], [0, 1, 2], []], [[0, 1, 2], [], [3, 4]]) == [[0, 1, 2], [], [3, 4]]
    # Overlaps by hand: {0, 1, 5} shares 2 with {0, 1} and 1 with {5, 6}; {5, 6, 7} 2 with {5, 6}.
    assert align_groups([[5, 6, 7], [0, 1, 5]], [[0, 1], [5, 6]]) == [[0, 1, 5], [5, 6, 7]]
    # Fewer groups than the reference: padded for the matching, not in the result when unused.
    assert align_groups([[5], [0, 1]], [[0, 1], [5], [7]]) == [[0, 1], [5]]
    assert align_groups([[0, 1], [5], [7]], [[5], [0, 1]]) == [[5], [0, 1], [7]]
    assert align_groups([], []) == []


def test_groups_picture_draws_a_configurations_seeds_in_matching_colours(monkeypatch):
    drawn = {}
    monkeypatch.setattr("lgh_tf.visualize.grouping_figure",
                        lambda groups, title: drawn.setdefault(title, groups) and np.zeros((4, 4, 3), np.uint8))
    runs = [{"config": "learned", "seed": 1, "groups": [[9, 10], [0, 1, 2], list(range(3, 9))]},
            {"config": "learned", "seed": 0, "groups": [[0, 1, 2], list(range(3, 9)), [9, 10]]}]
    ablation.groups_picture(runs)
    assert drawn["learned, seed 1"] == drawn["learned, seed 0"] == runs[1]["groups"]
    assert runs[0]["groups"][0] == [9, 10]  # the record keeps its branch order


def test_tiny_ablation_writes_tables_groups_and_resumes(tmp_path, monkeypatch, capsys):
    tiny = ["--input_size=64", "--backbone_filters=16", "--hourglass_depth=1", "--group_channels=4",
            "--trunk_hidden=8", "--run_eagerly", "--batch_size=2", "--synthetic_train=16", "--synthetic_test=4",
            "--eval_batches=1"]
    arguments = [f"--out_dir={tmp_path / 'ab'}", "--configs=k1,learned_fusion", "--seeds=2", "--pretrain_steps=1",
                 "--steps=2", "--temperature_every=7", f"--cache_dir={tmp_path / 'cache'}", "--", *tiny]

    def run_in_process(command, log_path):
        # The tool's main.py commands, run in this process (no TensorFlow start-up per run).
        assert command[:2] == [sys.executable, str(REPO / "main.py")], command
        result = run_main(*command[2:], check=False)
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, result.stderr[-3000:]

    monkeypatch.setattr(ablation, "_run", run_in_process)
    assert ablation.main(arguments) == 0
    assert "[4/4]" in capsys.readouterr().out
    out = tmp_path / "ab"
    table = (out / "ablation.md").read_text()
    assert "| Manual | Learned | Fea. Fuse | Mean EPE [mm] | Median EPE [mm] | AUC [20-50]" in table
    assert "| - | - | - |" in table and "| - | ✓ | ✓ |" in table
    assert "Table 3" not in table and "| Baseline |" not in table  # no learned K without fusion: no Table 3
    assert " ± " in table  # two seeds: mean ± std
    report = json.loads((out / "ablation.json").read_text())
    # Pages name no machine (issue 33): the absolute --out_dir and --cache_dir become RUN/<name>.
    assert str(tmp_path) not in json.dumps(report) and str(tmp_path) not in table
    assert "--out_dir=RUN/ab" in report["command"] and "--cache_dir=RUN/cache" in report["command"]
    assert {r["model_dir"] for r in report["runs"]} == {"RUN/k1_s0", "RUN/k1_s1", "RUN/learned_fusion_s0",
                                                         "RUN/learned_fusion_s1"}
    assert [(r["config"], r["seed"]) for r in report["runs"]] == [
        ("k1", 0), ("learned_fusion", 0), ("k1", 1), ("learned_fusion", 1)]
    learned = [r["groups"] for r in report["runs"] if r["config"] == "learned_fusion"]
    expected = adjusted_rand_index(*(groups_to_assignment(g) for g in learned))
    assert f"| learned_fusion | {expected:.3f} | 1 |" in table
    picture = cv2.imread(str(out / "groups.png"))
    tile = cv2.imread(str(out / "k1_s0" / "groups.png"))
    assert picture.shape[0] >= 2 * 400 and picture.shape[1] >= 2 * 400  # 2 configs x 2 seeds
    assert tile is not None and (out / "k1_s0" / "learning_curves.png").exists()
    # Each run's stage-2 curves are in its record, the table and the picture.
    assert all(r["curves"]["step"][-1] == 2 for r in report["runs"]) and "## Held-out error during stage 2" in table
    assert cv2.imread(str(out / "curves.png")) is not None
    config = json.loads((out / "learned_fusion_s1" / "config.json").read_text())
    assert config["optim"]["temperature"]["every"] == 7  # the tool's --temperature_every reached stage 2
    for seed in (0, 1):  # stage 1 once per seed, shared by the configurations
        assert json.loads((out / f"pretrain2d_s{seed}" / "train_results.json").read_text())["step"] == 1

    # Run again, as a user would: everything is finished, so nothing trains or evaluates again.
    logs = {p: p.read_text() for p in out.glob("*.log")}
    command = [sys.executable, str(REPO / "tools" / "ablation.py"), *arguments]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.read_text() for p in out.glob("*.log")} == logs  # no command ran
    assert (out / "ablation.md").read_text() == table


def test_a_recorded_run_whose_folder_is_gone_is_reused_only_when_it_matches(tmp_path, monkeypatch):
    record = {"config": "k1", "seed": 0, "groups": [list(range(21))], "figures": {"mean_epe_mm": 36.0}}
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ablation.json").write_text(json.dumps({"world": "realistic", "synthetic_seed": 0,
                                                    "steps": {"stage1": 2000, "stage2": 3000}, "runs": [record]}))
    recorded = [ablation._recorded_report(str(d)) for d in (tmp_path / "out", docs)]  # out_dir has none
    previous, _, report = ablation.previous_runs(recorded)
    assert previous == {("k1", 0): record} and report["world"] == "realistic"

    trained = []
    monkeypatch.setattr(ablation, "_run", lambda command, log: trained.append(command) or sys.exit("ran"))
    args = type("Args", (), {"previous": previous, "previous_matches": True, "out_dir": str(tmp_path / "out"),
                             "cache_dir": "c", "synthetic_seed": 0, "synthetic_world": "realistic"})()
    steps = ((2000, 100), (3000, 100))
    assert ablation.train_and_evaluate("k1", 0, args, [], steps, 45) == record and not trained
    with pytest.raises(SystemExit):  # another configuration of that seed: not recorded, so it trains
        ablation.train_and_evaluate("manual", 0, args, [], steps, 45)
    args.previous_matches = False  # other steps or world than the record's: trained again
    with pytest.raises(SystemExit):
        ablation.train_and_evaluate("k1", 0, args, [], steps, 45)
    (tmp_path / "out" / "k1_s0").mkdir(parents=True)  # the folder is here: it decides, not the record
    args.previous_matches = True
    with pytest.raises(SystemExit):
        ablation.train_and_evaluate("k1", 0, args, [], steps, 45)
    assert len(trained) == 3


def test_a_command_that_extends_an_ablation_keeps_the_records_it_does_not_ask_for(tmp_path, monkeypatch, capsys):
    """Table 3 added to a finished comparison by a second command: the comparison's records (other
    configurations, another seed) stay in ablation.json and the tables, and both commands are named."""
    figures = {"mean_epe_mm": 16.0, "median_epe_mm": 15.0, "auc_20_50": 0.9, "epe_2d_px": 5.0}
    earlier = [{"config": name, "seed": seed, "groups": [list(range(21))], "figures": figures, "commit": "old"}
               for seed in (0, 1, 2) for name in ("k1", "manual")]
    docs = tmp_path / "docs"
    docs.mkdir()
    first = "python tools/ablation.py --configs=k1,manual --seeds=3"
    (docs / "ablation.json").write_text(json.dumps({
        "world": "coded", "synthetic_seed": 0, "steps": {"stage1": 2, "stage2": 3}, "command": first,
        "runs": earlier}))
    monkeypatch.setattr(ablation, "machine_description", lambda: {"commit": "new"})
    trained = []

    def record(name, seed, args, extra, steps, tau_every):
        trained.append((name, seed))
        return {"config": name, "seed": seed, "groups": [list(range(10)), list(range(10, 21))],
                "figures": figures, "commit": "new"}

    monkeypatch.setattr(ablation, "train_and_evaluate", record)
    assert ablation.main([f"--out_dir={tmp_path / 'out'}", f"--docs_dir={docs}", "--configs=k1,k2_recipe",
                          "--seeds=2", "--pretrain_steps=2", "--steps=3", "--checkpoint_every=1"]) == 0
    assert trained == [("k1", 0), ("k2_recipe", 0), ("k1", 1), ("k2_recipe", 1)]
    report = json.loads((docs / "ablation.json").read_text())
    keys = [(r["config"], r["seed"]) for r in report["runs"]]
    assert sorted(keys) == sorted({*((r["config"], r["seed"]) for r in earlier), *trained})  # k1 seed 2 kept
    assert report["commands"][0] == first and "--configs=k1,k2_recipe" in report["commands"][1]
    table = (docs / "ablation.md").read_text()
    assert f"- `{first}`" in table and "| 2, error_affinity |" in table and "| manual seed 2 |" in table
    # Another world, or other steps, into the same docs: refused in one line before anything trains,
    # the records as they were.
    before, trained[:] = (docs / "ablation.json").read_text(), []
    for other in ("--synthetic_world=realistic", "--budget=2"):
        assert ablation.main([f"--out_dir={tmp_path / 'out2'}", f"--docs_dir={docs}", "--configs=k1", "--seeds=1",
                              "--pretrain_steps=2", "--steps=3", "--checkpoint_every=1", other]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and "\n" not in error and str(docs / "ablation.json") in error
    assert (docs / "ablation.json").read_text() == before and not trained and not (tmp_path / "out2").exists()


def test_the_recipe_rows_train_the_selector_as_the_recommended_remedy():
    """k<K>_recipe's one flag resolves (through main.py) to learned_fusion_recommended's four flags, and
    every other learned row trains the paper's selector."""
    recommended = selector_training(*ablation.CONFIGS["learned_fusion_recommended"][0])
    assert recommended == ("expected", "error_affinity", 45, 30)
    for name, (argv, _, label) in ablation.CONFIGS.items():
        if name.endswith("_recipe"):
            assert selector_training(*argv) == recommended and label == f"{name[1]}, error_affinity"
        elif name != "learned_fusion_recommended":
            assert selector_training(*argv) == ("blended", "uniform", 0, 30), name


def test_stage2_curves_set_each_evaluation_beside_the_training_batches_since_the_last(tmp_path):
    """Hand-computed: evaluations at steps 0, 2 and 4 of a 4-step run; the training batches' error is
    averaged over steps 1-2 and 3-4; the table reads the curves at a third, two thirds and the end."""
    history = {"train": {"step": [1, 2, 3, 4], "error_3d_mm": [10.0, 8.0, 6.0, 4.0]},
               "eval": {"step": [0, 2, 4], "error_3d_mm": [50.0, 12.0, 7.0]}}
    (tmp_path / "learning_curves.json").write_text(json.dumps(history))
    curves = ablation.stage2_curves(str(tmp_path))
    assert curves == {"step": [2, 4], "heldout_3d_mm": [12.0, 7.0], "train_3d_mm": [9.0, 5.0]}
    assert ablation.stage2_curves(str(tmp_path / "gone")) is None
    other = {"step": [2, 4], "heldout_3d_mm": [14.0, 9.0], "train_3d_mm": [9.0, 5.0]}
    runs = [{"config": "k1", "seed": s, "curves": c} for s, c in ((0, curves), (1, other))]
    section = "\n".join(ablation.curves_section(runs, ["k1"], "c.png"))
    # step 4 / 3 -> 1: no evaluation yet; 8 / 3 -> 3: the step-2 one; the end: held-out 7 and 9,
    # training 5 and 5, so the gap is 2 and 4 (mean 3, std sqrt(2)).
    assert "| held-out, step 1 | held-out, step 3 | held-out, step 4 |" in section
    assert f"| k1 | n/a | 13.000 ± 1.414 | 8.000 ± 1.414 | 5.000 ± 0.000 | 3.000 ± {2 ** 0.5:.3f} | 2 |" in section
    picture = ablation.curves_picture(runs)
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 10
    assert ablation.curves_picture([{"config": "k1", "seed": 0}]) is None


def _extend(tmp_path, monkeypatch, arguments, fail_at=None):
    """ablation.main(arguments) with train_and_evaluate replaced by a record (no training); the job
    numbered ``fail_at`` exits as an interrupted tool would. Returns (exit status, jobs asked)."""
    asked = []
    figures = {"mean_epe_mm": 16.0, "median_epe_mm": 15.0, "auc_20_50": 0.9, "epe_2d_px": 5.0}

    def record(name, seed, args, extra, steps, tau_every):
        asked.append((name, seed))
        if len(asked) == fail_at:
            sys.exit("interrupted")
        return {"config": name, "seed": seed, "groups": [list(range(21))], "figures": figures, "commit": "new"}

    monkeypatch.setattr(ablation, "machine_description", lambda: {"commit": "new"})
    monkeypatch.setattr(ablation, "train_and_evaluate", record)
    try:
        cut = arguments.index("--") if "--" in arguments else len(arguments)  # main.py's flags stay last
        code = ablation.main([*arguments[:cut], "--pretrain_steps=2", "--steps=3", "--checkpoint_every=1",
                              *arguments[cut:]])
    except SystemExit:
        code = "interrupted"
    return code, asked


def _records(directory):
    return sorted((r["config"], r["seed"]) for r in json.loads((directory / "ablation.json").read_text())["runs"])


def _write_report(directory, keys, **extra):
    directory.mkdir(parents=True, exist_ok=True)
    runs = [{"config": c, "seed": s, "groups": [list(range(21))], "figures": {"mean_epe_mm": 16.0}} for c, s in keys]
    (directory / "ablation.json").write_text(json.dumps({"world": "coded", "synthetic_seed": 0,
                                                         "steps": {"stage1": 2, "stage2": 3}, "runs": runs, **extra}))


def test_an_interrupted_extension_and_two_record_files_lose_no_record(tmp_path, monkeypatch):
    """Found in review: records asked for but not reached when the tool stops, and --docs_dir's records
    beside a smaller --out_dir file, were dropped from the tables."""
    docs, out = tmp_path / "docs", tmp_path / "out"
    k1 = [("k1", s) for s in (0, 1, 2)]
    _write_report(docs, k1 + [("manual", 0)])
    _write_report(out, [("k2", 0)])  # the same ablation, a later run recorded only here
    code, asked = _extend(tmp_path, monkeypatch, [f"--out_dir={out}", f"--docs_dir={docs}", "--configs=k1,k2_recipe",
                                                  "--seeds=3"], fail_at=3)
    assert code == "interrupted" and asked == [("k1", 0), ("k2_recipe", 0), ("k1", 1)]
    for directory in (docs, out):  # k1 seeds 1 and 2 and manual kept; k2 from out_dir merged in
        assert _records(directory) == sorted(k1 + [("manual", 0), ("k2", 0), ("k2_recipe", 0)])


@pytest.mark.parametrize("content, says", [
    ("{not json", "cannot be read"),
    ('["a list"]', "is not an ablation's record"),
    ('{"runs": {"x": 1}}', "is not an ablation's record"),
    ('{"runs": [{"config": "k1", "seed": 0, "figures": {}}]}', "runs[0] is not a run's record"),
    ('{"runs": ["junk"]}', "runs[0] is not a run's record"),
    # Found in review: records that passed the check and crashed after the next run had trained.
    ('{"runs": [{"config": "k1", "seed": 0, "groups": [3, 4], "figures": {}}]}', "runs[0] is not a run's record"),
    ('{"runs": [{"config": "k1", "seed": 0, "groups": [[0, 21]], "figures": {}}]}', "runs[0] is not a run's record"),
    ('{"runs": [{"config": "k1", "seed": 0, "groups": [[0]], "figures": {"mean_epe_mm": "16"}}]}',
     "runs[0] is not a run's record"),
    ('{"machine": "x", "runs": []}', "is not an ablation's record (machine)"),
    ('{"commands": "python tools/ablation.py", "runs": []}', "is not an ablation's record (commands)"),
])
def test_a_record_file_that_is_not_one_is_refused_in_one_line(tmp_path, monkeypatch, capsys, content, says):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ablation.json").write_text(content)
    code, asked = _extend(tmp_path, monkeypatch, [f"--out_dir={tmp_path / 'out'}", f"--docs_dir={tmp_path / 'docs'}",
                                                  "--configs=k1", "--seeds=1"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and not asked and error.startswith("error: ") and "\n" not in error and says in error
    assert (tmp_path / "docs" / "ablation.json").read_text() == content and not (tmp_path / "out").exists()


def test_an_out_dir_record_without_runs_does_not_drop_the_docs_records(tmp_path, monkeypatch):
    docs, out = tmp_path / "docs", tmp_path / "out"
    _write_report(docs, [("k1", s) for s in (0, 1, 2)])
    out.mkdir()
    (out / "ablation.json").write_text('{"runs": []}')  # cut down by hand: no world, no steps
    code, _ = _extend(tmp_path, monkeypatch, [f"--out_dir={out}", f"--docs_dir={docs}", "--configs=k1", "--seeds=1"])
    assert code == 0 and _records(docs) == _records(out) == [("k1", 0), ("k1", 1), ("k1", 2)]


def test_a_new_docs_dir_is_made(tmp_path, monkeypatch):
    # Found in a long run: the tables of its first run could not be written into a --docs_dir not there yet.
    docs = tmp_path / "new" / "docs"
    code, _ = _extend(tmp_path, monkeypatch, [f"--out_dir={tmp_path / 'out'}", f"--docs_dir={docs}", "--configs=k1",
                                              "--seeds=1"])
    assert code == 0 and _records(docs) == [("k1", 0)] and (docs / "ablation.md").exists()


def test_other_main_flags_or_tau_interval_are_another_ablation(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert _extend(tmp_path, monkeypatch, [f"--out_dir={out}", "--configs=k1", "--seeds=1", "--",
                                           "--synthetic_train=32"])[0] == 0
    report = json.loads((out / "ablation.json").read_text())
    assert report["main_flags"] == ["--synthetic_train=32"] and report["tau_every"] >= 1
    for other in (["--", "--synthetic_train=64"], ["--temperature_every=3", "--", "--synthetic_train=32"],
                  ["--synthetic_seed=1", "--", "--synthetic_train=32"]):
        code, asked = _extend(tmp_path, monkeypatch, [f"--out_dir={out}", "--configs=k1", "--seeds=1", *other])
        assert code == 2 and not asked and "records another ablation" in capsys.readouterr().err
    code, asked = _extend(tmp_path, monkeypatch, [f"--out_dir={out}", "--configs=k1", "--seeds=2", "--",
                                                  "--synthetic_train=32"])
    assert code == 0 and _records(out) == [("k1", 0), ("k1", 1)]


def test_curves_that_diverge_or_are_malformed_draw_no_wrong_line(tmp_path):
    """A NaN training error (written as null) is left out of its window, never written as NaN; curves
    with other evaluation steps are averaged at the steps all seeds have."""
    history = {"train": {"step": [1, 2, 3, 4], "error_3d_mm": [10.0, None, 6.0, 4.0]},
               "eval": {"step": [0, 2, 4], "error_3d_mm": [50.0, None, 7.0]}}
    (tmp_path / "learning_curves.json").write_text(json.dumps(history))
    assert ablation.stage2_curves(str(tmp_path)) == {"step": [4], "heldout_3d_mm": [7.0], "train_3d_mm": [5.0]}
    for bad in ({"train": {"step": [1, 2], "error_3d_mm": [1.0]}, "eval": {"step": [2], "error_3d_mm": [1.0]}},
                {"train": history["train"], "eval": {}}, [1, 2], {"train": history["train"],
                                                                  "eval": {"step": [None], "error_3d_mm": [1.0]}}):
        (tmp_path / "learning_curves.json").write_text(json.dumps(bad))
        assert ablation.stage2_curves(str(tmp_path)) is None, bad
    for bad in ({"step": [], "heldout_3d_mm": [], "train_3d_mm": []}, {"step": [2]}, [1],
                {"step": [2, 1], "heldout_3d_mm": [1.0, 1.0], "train_3d_mm": [1.0, 1.0]},
                {"step": [2], "heldout_3d_mm": [None], "train_3d_mm": [1.0]}):
        runs = [{"config": "k1", "seed": 0, "curves": bad}]
        assert ablation.curves_section(runs, ["k1"], "c.png") == [] and ablation.curves_picture(runs) is None
    a = {"step": [1, 2, 3], "heldout_3d_mm": [30.0, 20.0, 10.0], "train_3d_mm": [3.0, 2.0, 1.0]}
    b = {"step": [3], "heldout_3d_mm": [12.0], "train_3d_mm": [1.0]}
    runs = [{"config": "k1", "seed": 0, "curves": a}, {"config": "k1", "seed": 1, "curves": b}]
    assert ablation.curves_picture(runs) is not None  # one common step (3): a point, not a line from step 1
