"""tools/options_convergence.py: the table that says whether bfloat16 and XLA train like float32."""

from conftest import load_tool

options_convergence = load_tool("options_convergence")


def _rows(text):
    return {line.split(" | ")[0].strip("| "): [c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and "option" not in line}


def test_table_compares_the_seeds_every_option_finished():
    records = {
        "float32": {0: {"mean_epe_mm": 18.0, "epe_2d_px": 3.0}, 1: {"mean_epe_mm": 20.0, "epe_2d_px": 3.2},
                    2: {"mean_epe_mm": 99.0, "epe_2d_px": 9.0}},  # seed 2 is not finished by the others
        "bf16": {0: {"mean_epe_mm": 19.5, "epe_2d_px": 3.1}, 1: {"mean_epe_mm": 19.7, "epe_2d_px": 3.1}},
        "xla": {0: {"mean_epe_mm": 21.0, "epe_2d_px": 3.4}, 1: {"mean_epe_mm": 23.0, "epe_2d_px": 3.6}},
    }
    seconds = {"float32": {0: [100.0, 190.0], 1: [110.0, 210.0], 2: [1.0, 1.0]}, "bf16": {0: [80.0, 150.0]}}
    text = options_convergence.table(records, seconds)
    assert "Seeds compared: 0, 1." in text
    rows = _rows(text)
    # float32 over seeds 0, 1: mean 19, sample std sqrt(2) = 1.41; range [18, 20].
    assert rows["float32 (default)"][1:3] == ["19.00 ± 1.41", "18.00 / 20.00"]
    assert rows["float32 (default)"][6:8] == ["105", "200"]
    # bfloat16: mean 19.6 lies in [18, 20]; its time is the one recorded seed's.
    assert rows["bfloat16 (`--mixed_precision`)"][3:5] == ["+0.60", "yes"]
    assert rows["bfloat16 (`--mixed_precision`)"][6:8] == ["80", "150"]
    # XLA: mean 22 lies outside [18, 20]; no time recorded.
    assert rows["XLA (`--jit_compile`)"][3:5] == ["+3.00", "no"]
    assert rows["XLA (`--jit_compile`)"][6:8] == ["n/a", "n/a"]


def test_one_seed_makes_no_claim_about_the_spread():
    records = {"float32": {0: {"mean_epe_mm": 18.0, "epe_2d_px": 3.0}},
               "xla": {0: {"mean_epe_mm": 18.1, "epe_2d_px": 3.0}}}
    rows = _rows(options_convergence.table(records, {}))
    assert rows["XLA (`--jit_compile`)"][4] == "n/a (one seed)"
    assert options_convergence.table({"float32": {0: records["float32"][0]}, "xla": {}}, {}) == (
        "no seed finished by every option yet")


def test_curves_read_every_finished_run_and_draw_them(tmp_path):
    import json

    def write(path, steps, key, values):
        path.mkdir(parents=True)
        (path / "learning_curves.json").write_text(json.dumps({"eval": {"step": steps, key: values}}))

    write(tmp_path / "float32" / "pretrain2d_s0", [0, 100], "error_2d_px", [15.0, 3.0])
    write(tmp_path / "float32" / "learned_fusion_s0", [0, 50], "error_3d_mm", [80.0, 20.0])
    write(tmp_path / "bf16" / "pretrain2d_s0", [0, 100], "error_2d_px", [15.0, 3.1])  # stage 2 not run yet
    found = options_convergence.curves(str(tmp_path), ["float32", "bf16", "xla"], range(2))
    assert found == {"float32": [(0, ([0, 100], [15.0, 3.0]), ([0, 50], [80.0, 20.0]))]}
    picture = options_convergence.curves_picture(found)
    assert picture.shape == (400, 1000, 3) and picture.dtype.name == "uint8"
    assert len({tuple(p) for p in picture.reshape(-1, 3)[::97]}) > 3  # drawn, not blank
