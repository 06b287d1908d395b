"""ASR verbs of the `minispeech` command: evaluate a model on a manifest,
transcribe files.

    minispeech evaluate MODEL MANIFEST [--out hyps.jsonl] [--batch-size N]
    minispeech transcribe MODEL AUDIO... [--manifest M] [--timestamps] [--batch-size N]
    minispeech lm MANIFEST... --out lm.arpa [--order 3]

evaluate and transcribe decode greedily, or with `--beam N` by CTC prefix beam search,
optionally fused with a word n-gram LM (`--lm lm.arpa --lm-alpha 0.5 --lm-beta 1.0`).

MODEL is a model file written by minispeech (`save_to`, the end of
`minispeech train`) or
a NeMo `.nemo` file, which is imported (`minispeech.import_nemo`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def load_asr_model(path: str, device: str = "cpu"):
    """A minispeech model file, or a NeMo .nemo file through the importer."""
    from minispeech.nemo import load_model

    return load_model(path, map_location=device)


def add_decoding_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam", type=int, default=0, help="CTC prefix beam width (0: greedy)"
    )
    parser.add_argument(
        "--lm", help="word n-gram LM (ARPA, from `minispeech lm`) for the beam"
    )
    parser.add_argument("--lm-alpha", type=float, default=0.5, help="LM weight")
    parser.add_argument(
        "--lm-beta", type=float, default=1.0, help="word insertion bonus"
    )


def set_decoding(model, args) -> None:
    """Switch a CTC model to beam search (+ LM) when the command line asks for it."""
    if args.beam <= 0 and not args.lm:
        return
    if not hasattr(model, "decoding"):
        raise SystemExit(f"--beam/--lm need a CTC model, not a {type(model).__name__}")
    model.decoding.update(
        strategy="beam",
        beam_width=max(args.beam, 1),
        lm_path=args.lm,
        lm_alpha=args.lm_alpha,
        lm_beta=args.lm_beta,
    )


def evaluate_verb(argv: list[str]) -> int:
    from minispeech.data.manifest import read_manifest, write_manifest
    from minispeech.metrics.wer import cer, wer

    parser = argparse.ArgumentParser(
        prog="minispeech evaluate", description="WER and CER of a model on a manifest."
    )
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("manifest", help="JSONL manifest with audio_filepath and text")
    parser.add_argument(
        "--out", help="write hypotheses here as JSONL (pred_text field)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    add_decoding_args(parser)
    args = parser.parse_args(argv)
    rows = read_manifest(args.manifest, required=("audio_filepath", "duration", "text"))
    model = load_asr_model(args.model, args.device)
    set_decoding(model, args)
    start = time.perf_counter()
    hyps = model.transcribe(
        [row["audio_filepath"] for row in rows], batch_size=args.batch_size
    )
    seconds = time.perf_counter() - start
    refs = [row["text"] for row in rows]
    audio_s = sum(float(row["duration"]) for row in rows)
    print(f"{args.manifest}: {len(rows)} utterances, {audio_s / 60:.1f} min of audio")
    print(
        f"WER {100 * wer(refs, hyps):.2f}%  CER {100 * cer(refs, hyps):.2f}%  "
        f"({seconds:.1f} s, {audio_s / max(seconds, 1e-9):.0f}x real time)"
    )
    if args.out:
        out_rows = [{**row, "pred_text": hyp} for row, hyp in zip(rows, hyps)]
        write_manifest(args.out, out_rows, relative_to=Path(args.manifest).parent)
        print(f"hypotheses written to {args.out}")
    return 0


def transcribe_verb(argv: list[str]) -> int:
    from minispeech.data.manifest import read_manifest

    parser = argparse.ArgumentParser(
        prog="minispeech transcribe",
        description="Print the transcript of each audio file.",
    )
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument(
        "--manifest", help="also transcribe every audio_filepath of this manifest"
    )
    parser.add_argument(
        "--timestamps", action="store_true", help="word start/end times (CTC)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    add_decoding_args(parser)
    args = parser.parse_args(argv)
    paths = list(args.audio)
    if args.manifest:
        paths += [row["audio_filepath"] for row in read_manifest(args.manifest)]
    if not paths:
        parser.error("give audio files or --manifest")
    model = load_asr_model(args.model, args.device)
    set_decoding(model, args)
    if args.timestamps:
        if not hasattr(model, "transcribe_with_timestamps"):
            parser.error(
                f"--timestamps needs a CTC model, not a {type(model).__name__}"
            )
        for path, result in zip(paths, model.transcribe_with_timestamps(paths)):
            print(json.dumps({"audio_filepath": str(path), **result}))
        return 0
    for path, text in zip(paths, model.transcribe(paths, batch_size=args.batch_size)):
        sys.stdout.write(f"{path}\t{text}\n")
    return 0


def lm_verb(argv: list[str]) -> int:
    from minispeech.asr.ngram_lm import NGramLM
    from minispeech.data.manifest import read_manifest

    parser = argparse.ArgumentParser(
        prog="minispeech lm",
        description="Train a word n-gram LM (modified Kneser-Ney) "
        "on the text of manifests; writes an ARPA file.",
    )
    parser.add_argument(
        "manifests", nargs="+", help="JSONL manifests with a text field"
    )
    parser.add_argument("--out", required=True, help="ARPA file to write")
    parser.add_argument("--order", type=int, default=3)
    args = parser.parse_args(argv)
    texts = [
        row["text"]
        for path in args.manifests
        for row in read_manifest(path, required=("text",), check_audio=False)
    ]
    lm = NGramLM.train(texts, order=args.order)
    print(f"{args.order}-gram LM on {len(texts)} sentences -> {lm.save(args.out)}")
    return 0
