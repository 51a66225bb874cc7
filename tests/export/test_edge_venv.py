"""The edge install: a fresh virtual environment with `pip install .[edge]` only.

It must load and run a bundle (NumPy runtime and LiteRT) with no TensorFlow anywhere: not
installed, not imported. Needs the package index (or pip's cache) like any install.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepsense.run import load_run

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md", "deepsense", "rdeepsense",
                 "deepiot", "edge", "gateway")

CHECK = """
import json, sys, importlib.util
import numpy as np
from edge.runtime import load_bundle
x = np.load(sys.argv[2])
result = {}
for backend in ("numpy", "litert"):
    model = load_bundle(sys.argv[1], backend=backend)
    result[backend] = model.predict(x).tolist()
result["tensorflow_imported"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
result["tensorflow_installed"] = importlib.util.find_spec("tensorflow") is not None
print(json.dumps(result))
"""


@pytest.mark.slow
def test_a_bundle_runs_in_a_fresh_edge_only_venv(runs, bundles, edge_data, tmp_path):
    venv = tmp_path / "edge-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in PROJECT_FILES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / name).is_dir() else {}))
    install = subprocess.run([str(python), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", f"{source}[edge]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]

    x = edge_data.x[:16]
    np.save(tmp_path / "x.npy", x)
    bundle = bundles["thinned"].with_suffix(".zip")
    run = subprocess.run([str(python), "-c", CHECK, str(bundle), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert not result["tensorflow_installed"] and not result["tensorflow_imported"]
    model, _ = load_run(runs["thinned"])
    expected = model.predict(x, verbose=0)
    for backend in ("numpy", "litert"):
        np.testing.assert_allclose(np.array(result[backend]), expected, atol=1e-4, rtol=0)

    cli = subprocess.run([str(venv / "bin" / "deepsense"), "predict", "--bundle", str(bundle),
                          "--data", str(runs["thinned"].parent / "data"),
                          "--out", str(tmp_path / "pred")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert json.loads((tmp_path / "pred" / "metrics.json").read_text())["n_windows"] > 0
