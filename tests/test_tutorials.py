"""Every tutorials/*.py runs as a plain script, headless, within a time limit."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# NN_task_topic.py; tutorials/common.py is their shared preamble, not a tutorial
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))
# seconds per tutorial; each tutorial states its own expected time at the top
TIMEOUT = float(os.environ.get("MINISPEECH_TUTORIAL_TIMEOUT", 300))


# runs a script with `import matplotlib` failing, as on a machine without it; the
# script's folder goes first on sys.path as `python script.py` does (for common.py)
NO_MATPLOTLIB = (
    "import os, runpy, sys; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:]; "
    "sys.path.insert(0, os.path.dirname(sys.argv[0])); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _run(script: Path, out_dir: Path, prefix=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "MINISPEECH_TUTORIAL_OUT": str(out_dir)}
    # training tutorials take a few steps only: the suite checks that they run
    env.setdefault("MINISPEECH_TUTORIAL_STEPS", "20")
    return subprocess.run(
        [sys.executable, *prefix, str(script), str(out_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_tutorials_are_found():
    assert TUTORIALS, f"no tutorials found in {REPO / 'tutorials'}"


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_uses_the_shared_preamble(script):
    """Output folder, matplotlib and step count come from common.py, not a copy."""
    text = script.read_text()
    assert "from common import" in text, f"{script.name} does not use common.py"
    assert 'MINISPEECH_TUTORIAL_OUT"' not in text, f"{script.name} copies the preamble"


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_a_script(script, tmp_path):
    text = script.read_text()
    assert "# %%" in text, f"{script.name} is not in jupytext percent format"
    result = _run(script, tmp_path)
    assert result.returncode == 0, (
        f"{script.name} failed (exit {result.returncode})\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n"
        f"--- stderr ---\n{result.stderr[-4000:]}"
    )
    if importlib.util.find_spec("matplotlib") and "savefig" in text:
        assert list(tmp_path.glob("**/*.png")), f"{script.name} saved no figure"


def test_features_tutorial_runs_without_matplotlib(tmp_path):
    script = REPO / "tutorials" / "01_audio_features.py"
    result = _run(script, tmp_path, prefix=("-c", NO_MATPLOTLIB))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "features (2, 80," in result.stdout and not list(tmp_path.glob("*.png"))
