"""The wheel works (issue 33): a non-editable install of the built wheel ships the demo model as
package data, so `lgh-tf --mode=predict --image=...` without --checkpoint runs from any folder.

The wheel is built without build isolation and installed with --no-deps into a fresh target
folder: the installed TensorFlow is reused, nothing is downloaded (~15 s build and install, plus
one predict, which starts TensorFlow in a new process)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import REPO

# What the wheel is built from (a copy: the build leaves build/ and *.egg-info behind).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "main.py", "lgh_tf", "flags")


@pytest.mark.slow
def test_predict_from_an_installed_wheel_in_another_folder(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("lgh_tf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lgh_tf/demo/synthetic_demo/1/saved_model.pb" in names
    assert "lgh_tf/demo/synthetic_demo/1/variables/variables.index" in names and "flags/synthetic.cfg" in names
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"  # neither the checkout nor the install: no saved_models/, no examples/
    elsewhere.mkdir()
    shutil.copy2(REPO / "examples" / "hand1.png", elsewhere / "photo.png")
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, str(site / "bin" / "lgh-tf"), "--mode=predict", "--image=photo.png",
                             "--output_dir=out"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    model_line = next(line for line in result.stdout.splitlines() if line.startswith("model: "))
    assert str(site / "lgh_tf" / "demo" / "synthetic_demo" / "1") in model_line  # the installed copy
    written = json.loads((elsewhere / "out" / "photo.json").read_text())
    truth = np.asarray(json.loads((REPO / "examples" / "annotations.json").read_text())["images"]["hand1.png"]["uv"])
    assert np.mean(np.linalg.norm(np.asarray(written["uv"]) - truth, axis=-1)) < 16.0  # test_demo_model's bound
    for name in ("photo_skeleton.png", "photo_3d.png"):
        assert (elsewhere / "out" / name).stat().st_size > 1000
