"""ASR verbs of the `minispeech` command, and the ASR part of `evaluate`.

    minispeech transcribe MODEL AUDIO... [--manifest M] [--timestamps] [--batch-size N]
    minispeech lm MANIFEST... --out lm.arpa [--order 3]
    minispeech evaluate MODEL MANIFEST [--beam N --lm lm.arpa] [--lexicon FILE]
                        [--out hyps.jsonl]

Decoding is greedy, or with `--beam N` beam search (CTC: prefix beam search, which
`--lm lm.arpa --lm-alpha 0.5 --lm-beta 1.0` fuses with a word n-gram LM). `--rescore`
(an AED model with a CTC head): attention rescoring, the CTC head's beam (with the LM
and lexicon) proposes and the decoder chooses (`decoding.strategy=attention_rescoring`).
`--lexicon FILE` (a word list or an ARPA LM) makes a CTC, RNN-T or AED beam spell only
those words. These options are aliases of the model config overrides
`decoding.strategy=beam decoding.beam_size=N decoding.lm_path=... decoding.lm_alpha=...
decoding.lm_beta=... decoding.lexicon=...`, so the model's own key check answers a
model that cannot use them.

MODEL is a model file written by minispeech (`save_to`, the end of `minispeech train`)
or a NeMo `.nemo` file, which is imported (`minispeech.import_nemo`). A manifest line
with `offset` and `duration` is a segment of a longer recording: only the segment is
decoded (and scored), and a segment outside its file is an error naming `path:line`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    check_output,
    load_model,
    positive_int,
    with_overrides,
)


def add_decoding_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam",
        type=positive_int,
        help="beam size (decoding.beam_size); greedy without",
    )
    parser.add_argument(
        "--lm", help="word n-gram LM (ARPA, from `minispeech lm`) fused into a CTC beam"
    )
    parser.add_argument("--lm-alpha", type=float, help="LM weight (default 0.5)")
    parser.add_argument(
        "--lm-beta", type=float, help="word insertion bonus (default 1.0)"
    )
    parser.add_argument(
        "--lexicon",
        help="the beam spells only these words (decoding.lexicon): a word list, one a "
        "line, or an ARPA LM (its words)",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="AED with a CTC head: attention rescoring (the CTC beam, with --beam, "
        "--lm and --lexicon, proposes; the decoder chooses)",
    )


def decoding_overrides(args: argparse.Namespace) -> list[str]:
    """--beam/--lm/--lm-alpha/--lm-beta/--lexicon/--rescore as the model config
    overrides they stand for."""
    overrides = []
    if getattr(args, "rescore", False):
        overrides.append("decoding.strategy=attention_rescoring")
    elif args.beam or args.lm or getattr(args, "lexicon", None):
        overrides.append("decoding.strategy=beam")
    if args.beam:
        overrides.append(f"decoding.beam_size={args.beam}")
    if args.lm:
        if not Path(args.lm).is_file():
            raise CommandError(f"--lm {args.lm}: no such file")
        overrides.append(f"decoding.lm_path={json.dumps(str(args.lm))}")
    for name in ("lm_alpha", "lm_beta"):
        if getattr(args, name) is not None:
            overrides.append(f"decoding.{name}={getattr(args, name)}")
    if getattr(args, "lexicon", None):
        if not Path(args.lexicon).is_file():
            raise CommandError(f"--lexicon {args.lexicon}: no such file")
        overrides.append(f"decoding.lexicon={json.dumps(str(args.lexicon))}")
    return overrides


def load_asr_model(path: str, device: str, overrides=()):
    """A model file that must hold an ASR model (CTC or transducer)."""
    from minispeech.asr.asr_model import ASRModel

    model = load_model(path, device, overrides)
    if not isinstance(model, ASRModel):
        raise CommandError(f"{path}: holds a {type(model).__name__}, not an ASR model")
    return model


def write_hypotheses(model, loader, dataset, out: str) -> Path:
    """Decode the evaluated batches again and write the manifest rows with a
    `pred_text` field to `out` (atomically; audio paths relative to its folder)."""
    import torch

    from minispeech.asr.asr_model import ASRModel
    from minispeech.data.manifest import write_manifest

    if not isinstance(model, ASRModel):
        raise CommandError(f"--out needs an ASR model, not a {type(model).__name__}")
    device, hyps = next(model.parameters()).device, []
    with torch.no_grad():
        for batch in loader:
            hyps += model.decode(
                batch["audio"].to(device), batch["audio_lens"].to(device)
            )
    rows = [{**row, "pred_text": hyp} for row, hyp in zip(dataset.rows, hyps)]
    return write_manifest(out, rows, relative_to=Path(out).parent)


def transcribe_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech transcribe",
        description="Print the transcript of each audio file (path TAB text).",
    )
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument(
        "--manifest", help="also transcribe every line (file or segment) of a manifest"
    )
    parser.add_argument(
        "--timestamps", action="store_true", help="word start/end times (CTC)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    add_decoding_args(parser)
    parser.add_argument(
        "--pnc", action="store_true", help="AED: the <|pnc|> prompt (written form)"
    )
    parser.add_argument(
        "--prompt", help="AED: the prompt's tokens spelled out, <|...|><|...|>..."
    )
    args = parser.parse_args(argv)
    if not args.audio and not args.manifest:
        parser.error("give audio files or --manifest")
    names, waves = audio_inputs(args.audio, args.manifest)
    model = load_asr_model(args.model, args.device)
    aed = hasattr(model, "decode_step")  # an attention encoder-decoder: prompt flags
    if aed and args.lm and not args.rescore:
        raise CommandError("--lm: an AED model takes an LM with --rescore only")
    if not aed and (args.pnc or args.prompt):
        parser.error(f"--pnc/--prompt need an AED model, not a {type(model).__name__}")
    overrides = decoding_overrides(args)
    if overrides:
        model = with_overrides(model, overrides, f"{args.model} {' '.join(overrides)}")
    if aed:
        aed_transcribe = aed_transcriber(model, args)
    if args.timestamps and not hasattr(model, "transcribe_with_timestamps"):
        parser.error(f"--timestamps needs a CTC model, not a {type(model).__name__}")
    timestamps = args.timestamps
    decode = model.transcribe_with_timestamps if timestamps else model.transcribe
    if hasattr(model, "decode_step"):
        decode = aed_transcribe
    for start in range(0, len(names), args.batch_size):
        loads = waves[start : start + args.batch_size]
        batch = [load(model.sample_rate) for load in loads]  # [(S,), ...]
        for name, result in zip(names[start:], decode(batch, batch_size=len(batch))):
            line = {"audio_filepath": name, **result} if timestamps else None
            print(json.dumps(line) if timestamps else f"{name}\t{result}")
    return 0


def aed_transcriber(model, args):
    """model.transcribe with the prompt of --pnc or --prompt and the --beam size
    (--lexicon reached the model as decoding.lexicon)."""
    prompt = prompt_ids(model.tokenizer, args.prompt) if args.prompt else None

    def transcribe(waves, batch_size):
        return model.transcribe(waves, args.pnc, args.beam, prompt, batch_size)

    return transcribe


def prompt_ids(tokenizer, text: str) -> list[int]:
    """'<|startoftranscript|><|en|>...' -> the tokens' ids; anything else, or a token
    the model's tokenizer lacks, is a CommandError naming it."""
    import re

    tokens = re.findall(r"<\|[^|]*\|>", text)
    if "".join(tokens) != text.replace(" ", ""):
        raise CommandError(f"--prompt {text!r}: give special tokens only, <|...|>")
    try:
        return [tokenizer.token_to_id(token) for token in tokens]
    except ValueError as error:
        raise CommandError(f"--prompt: {error}") from None


def audio_inputs(paths: list[str], manifest: str | None) -> tuple[list, list]:
    """Names and loaders (sample_rate -> wave (S,)) of the audio files and of the
    manifest's lines, all checked before the model is loaded: a missing file, or a
    segment outside its file (named `manifest:line`), stops the command first."""
    from minispeech.audio.io import audio_info
    from minispeech.data.datasets import AudioTextDataset

    for path in paths:
        audio_info(path)  # AudioError naming the file
    rows = [{"audio_filepath": str(path)} for path in paths]
    if manifest:  # the dataset checks every line, and segments against their files
        rows += AudioTextDataset(manifest, tokenizer=None, sample_rate=None).rows
    names = [
        row["audio_filepath"] + (f"@{row['offset']:g}" if "offset" in row else "")
        for row in rows
    ]
    return names, [row_loader(row) for row in rows]


def row_loader(row: dict):
    """sample_rate -> the row's wave (S,): its segment when the row has an offset."""
    from minispeech.audio.io import load_audio

    segment = {}
    if "offset" in row:
        segment = {"offset": row["offset"], "duration": row["duration"]}
    return lambda sample_rate: load_audio(
        row["audio_filepath"], sample_rate=sample_rate, **segment
    )[0]


def lm_verb(argv: list[str]) -> int:
    from minispeech.asr.ngram_lm import NGramLM
    from minispeech.data.manifest import read_manifest

    parser = ArgumentParser(
        prog="minispeech lm",
        description="Train a word n-gram LM (modified Kneser-Ney) "
        "on the text of manifests; writes an ARPA file.",
    )
    parser.add_argument(
        "manifests", nargs="+", help="JSONL manifests with a text field"
    )
    parser.add_argument("--out", required=True, help="ARPA file to write")
    parser.add_argument("--order", type=positive_int, default=3)
    args = parser.parse_args(argv)
    check_output(args.out)
    texts = [
        row["text"]
        for path in args.manifests
        for row in read_manifest(path, required=("text",), check_audio=False)
    ]
    lm = NGramLM.train(texts, order=args.order)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    lm.save(partial)
    os.replace(partial, out)  # a reader never sees half an LM
    print(f"{args.order}-gram LM on {len(texts)} sentences -> {out}")
    return 0
