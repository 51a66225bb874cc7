"""The dataset recipes, run verbatim: the commands of datasets/<name>/README.md."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def recipe_commands(readme: Path) -> list[list[str]]:
    """The `deepsense ...` commands of the first ```sh block after '## Recipe'."""
    text = readme.read_text()
    block = re.search(r"## Recipe.*?```sh\n(.*?)```", text, re.S)
    assert block, f"{readme}: no '## Recipe' section with a ```sh block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith("deepsense ")]


@pytest.mark.slow
def test_basicmotions_recipe_verbatim(tmp_path, monkeypatch):
    from deepsense.cli import main

    commands = recipe_commands(REPO / "datasets/basicmotions/README.md")
    assert [c[0] for c in commands] == ["prepare", "train", "evaluate"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").symlink_to(REPO / "datasets")
    for argv in commands:
        assert main(argv) == 0, argv
    metrics = json.loads((tmp_path / "runs/basicmotions/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.975
