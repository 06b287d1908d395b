"""ASR verbs of the `minispeech` command: evaluate a model on a manifest, transcribe files.

    minispeech evaluate MODEL MANIFEST [--out hyps.jsonl] [--batch-size N]
    minispeech transcribe MODEL AUDIO... [--manifest M] [--timestamps] [--batch-size N]

MODEL is a model file written by minispeech (`save_to`, the end of `minispeech train`) or
a NeMo `.nemo` file, which is imported (`minispeech.import_nemo`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from minispeech.checkpoint import CheckpointError, restore_from


def load_asr_model(path: str, device: str = "cpu"):
    """A minispeech model file, or a NeMo .nemo file through the importer."""
    try:
        model = restore_from(path, map_location=device)
    except CheckpointError as error:
        if "import_nemo" not in str(error):
            raise
        from minispeech.nemo_import import import_nemo

        model = import_nemo(path)
    return model.to(device).eval()


def evaluate_verb(argv: list[str]) -> int:
    from minispeech.data.manifest import read_manifest, write_manifest
    from minispeech.metrics import cer, wer

    parser = argparse.ArgumentParser(prog="minispeech evaluate",
                                     description="WER and CER of a model on a manifest.")  # fmt: skip
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("manifest", help="JSONL manifest with audio_filepath and text")
    parser.add_argument("--out", help="write hypotheses here as JSONL (pred_text field)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    rows = read_manifest(args.manifest, required=("audio_filepath", "duration", "text"))
    model = load_asr_model(args.model, args.device)
    start = time.perf_counter()
    hyps = model.transcribe([row["audio_filepath"] for row in rows], batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    refs = [row["text"] for row in rows]
    audio_s = sum(float(row["duration"]) for row in rows)
    print(f"{args.manifest}: {len(rows)} utterances, {audio_s / 60:.1f} min of audio")
    print(f"WER {100 * wer(refs, hyps):.2f}%  CER {100 * cer(refs, hyps):.2f}%  "
          f"({seconds:.1f} s, {audio_s / max(seconds, 1e-9):.0f}x real time)")  # fmt: skip
    if args.out:
        out_rows = [{**row, "pred_text": hyp} for row, hyp in zip(rows, hyps)]
        write_manifest(args.out, out_rows, relative_to=Path(args.manifest).parent)
        print(f"hypotheses written to {args.out}")
    return 0


def transcribe_verb(argv: list[str]) -> int:
    from minispeech.data.manifest import read_manifest

    parser = argparse.ArgumentParser(prog="minispeech transcribe",
                                     description="Print the transcript of each audio file.")  # fmt: skip
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument("--manifest", help="also transcribe every audio_filepath of this manifest")
    parser.add_argument("--timestamps", action="store_true", help="word start/end times (CTC)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    paths = list(args.audio)
    if args.manifest:
        paths += [row["audio_filepath"] for row in read_manifest(args.manifest)]
    if not paths:
        parser.error("give audio files or --manifest")
    model = load_asr_model(args.model, args.device)
    if args.timestamps:
        if not hasattr(model, "transcribe_with_timestamps"):
            parser.error(f"--timestamps needs a CTC model, not a {type(model).__name__}")
        for path, result in zip(paths, model.transcribe_with_timestamps(paths)):
            print(json.dumps({"audio_filepath": str(path), **result}))
        return 0
    for path, text in zip(paths, model.transcribe(paths, batch_size=args.batch_size)):
        sys.stdout.write(f"{path}\t{text}\n")
    return 0
