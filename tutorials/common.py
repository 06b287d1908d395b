"""What every tutorial sets up first: its output folder, matplotlib if present, steps.

A tutorial runs as a script, `python tutorials/NN_name.py [OUT_DIR]`, or as a notebook
(jupytext) started in tutorials/; either way `from common import ...` finds this file.

- The output folder is the first argument, else `$MINISPEECH_TUTORIAL_OUT`, else
  `tutorials/out/`.
- matplotlib is optional: without it `plt` is None, and a tutorial skips its figures
  but still prints its numbers.
- The training tutorials take `$MINISPEECH_TUTORIAL_STEPS` steps (the test suite sets a
  few, to check that they run), else their own default.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def output_dir() -> Path:
    """The folder for figures and checkpoints, created if needed."""
    args = [a for a in sys.argv[1:] if not a.startswith("-")]  # notebooks pass "-f ..."
    default = os.environ.get("MINISPEECH_TUTORIAL_OUT", REPO / "tutorials" / "out")
    out = Path(args[0] if args else default)
    out.mkdir(parents=True, exist_ok=True)
    return out


def training_steps(default: int) -> int:
    """Steps for a training tutorial: $MINISPEECH_TUTORIAL_STEPS, else `default`."""
    return int(os.environ.get("MINISPEECH_TUTORIAL_STEPS", default))


def short_recipe(config: str, name: str, steps: int, out: Path) -> dict:
    """The recipe `config` (a path under the repository) shortened for a tutorial:
    `steps` training steps, one validation at the end on the first two batches
    (the tutorials score the dev set themselves), a warm-up of at most a quarter of
    the run, no audio cache (it pays off over a long run only), no speaker LDA
    backend (fitting it embeds every training utterance twice), and the run `name`
    under out/experiments."""
    from minispeech.core.config import load_recipe

    cfg = load_recipe(
        REPO / config,
        REPO,
        out / "experiments",
        max_steps=steps,
        val_check_interval=steps,
        limit_val_batches=2,
    )
    cfg["model"]["train_ds"]["cache_audio"] = False
    cfg["model"].pop("backend", None)
    cfg["model"]["optim"]["sched"]["warmup_steps"] = min(100, steps // 4)
    cfg["exp_manager"]["name"] = name
    return cfg


def pyplot():
    """matplotlib.pyplot, or None where matplotlib is not installed."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # the tutorial still runs; it only skips the figures
        return None
    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure as a PNG (100 dpi), close it, and say where it went."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved {path}")
