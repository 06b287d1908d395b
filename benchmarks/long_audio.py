"""Peak memory of `minispeech transcribe` and `minispeech evaluate` on one long file.

A recording of `--minutes` (default 60) is made by concatenating bundled test
utterances (16 kHz, 16-bit WAV), its manifest line carries the concatenated text, and
each verb runs in its own process on the main recipe's model shape (untrained weights:
memory does not depend on them). The peak resident set size (RSS) of each process is
read from the kernel (`ru_maxrss` of the finished child). The target is < 2 GB.

    python benchmarks/long_audio.py [--minutes 60] [--model FILE.nemo]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "tinyspeech"


def make_long_file(folder: Path, minutes: float) -> Path:
    """A WAV of `minutes` of corpus speech and a one-line manifest; the manifest."""
    rows = [json.loads(line) for line in open(CORPUS / "test.jsonl")]
    target = int(minutes * 60 * 16000)
    wav = folder / "long.wav"
    texts, written, i = [], 0, 0
    with sf.SoundFile(wav, "w", 16000, 1, subtype="PCM_16") as out:
        while written < target:
            row = rows[i % len(rows)]
            wave, _ = sf.read(CORPUS / row["audio_filepath"], dtype="float32")
            wave = np.concatenate([wave, np.zeros(4000, np.float32)])  # 0.25 s pause
            wave = wave[: target - written]
            out.write(wave)
            written += len(wave)
            texts.append(row["text"])
            i += 1
    manifest = folder / "long.jsonl"
    line = {"audio_filepath": "long.wav", "text": " ".join(texts)}
    manifest.write_text(json.dumps({**line, "duration": written / 16000}) + "\n")
    return manifest


def untrained_model(folder: Path) -> Path:
    """The main recipe's model with its initial weights, saved as a model file."""
    from minispeech.core.config import load_recipe
    from minispeech.core.model import SpeechModel

    cfg = load_recipe(REPO / "configs/asr/conformer_ctc_tiny.yaml", REPO, folder)
    return SpeechModel.from_config(cfg["model"]).save_to(folder / "model.nemo")


def peak_rss(command: list[str]) -> tuple[float, float, int]:
    """(peak RSS in GB, wall seconds, exit code) of one child process."""
    script = (
        "import resource, subprocess, sys, time; t = time.time(); "
        "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
        "print(r, time.time() - t, rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *command], capture_output=True, text=True
    )
    kb, seconds, rc = out.stdout.split()
    return int(kb) / 1024**2, float(seconds), int(rc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", help="a model file (default: the main recipe)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.time()
        manifest = make_long_file(folder, args.minutes)
        made = time.time() - start
        model = args.model or str(untrained_model(folder))
        cli = [sys.executable, "-m", "minispeech"]
        runs = {
            "transcribe": [*cli, "transcribe", model, str(folder / "long.wav")],
            "evaluate": [*cli, "evaluate", model, str(manifest)],
        }
        print(f"{args.minutes:g} min of audio made in {made:.0f} s")
        print(f"{'verb':<12}{'peak RSS (GB)':>15}{'seconds':>10}{'RTFx':>8}{'exit':>6}")
        for verb, command in runs.items():
            gb, seconds, rc = peak_rss(command)
            rtfx = args.minutes * 60 / seconds
            print(f"{verb:<12}{gb:>15.2f}{seconds:>10.0f}{rtfx:>8.1f}{rc:>6}")
        self_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"(this script itself: {self_gb:.2f} GB; target < 2 GB per verb)")


if __name__ == "__main__":
    main()
