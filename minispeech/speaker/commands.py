"""Speaker verbs of the `minispeech` command.

    minispeech embed MODEL AUDIO... [--manifest M] --out EMBS.npy [--batch-size N]
    minispeech verify MODEL A.wav B.wav [--threshold 0.7]
    minispeech verify MODEL --trials TRIALS [--root DIR] [--out SCORES.txt]
    minispeech identify MODEL --enroll ENROLL.jsonl AUDIO...
    minispeech corpus trials MANIFEST --out TRIALS.txt [--n N] [--seed S]
    minispeech corpus far-like MANIFEST --out DIR [--per-speaker 25] [--seed S]

MODEL is a SpeakerModel file (`minispeech train configs/speaker/...`) or a NeMo
EncDecSpeakerLabelModel `.nemo` (TitaNet, ECAPA), imported. Scores are NeMo's
(cos(e1, e2) + 1) / 2 in [0, 1]; a pair is "same speaker" when score >= threshold.
A model with a fitted backend (`model.backend`, backend.py) is scored in that
backend's space (LDA, and each file's pitch when the backend weighs it); `embed`
writes the network's own embeddings (NeMo's).

Trials are VoxCeleb1's `label enrollment test` lines (label 1 = same speaker); their
paths are relative to `--root` (default: the trials file's folder) unless absolute,
which is how `corpus trials` writes them (relative to its --out folder, or absolute
with --absolute). `verify --trials` prints the EER, NIST's minDCF at p_target 0.01
and 0.05 (C_miss = C_fa = 1) and the trial counts; `--out` keeps one line per trial,
`label enrollment test score`.

Too short: every input must last at least MIN_SECONDS (0.25 s: 25 frames of 10 ms,
about one syllable). TitaNet and ECAPA keep the frame rate and pad every conv with
zeros, so the embedding of a clip much shorter than their convolutions' receptive
field (93 frames, 0.93 s, for configs/speaker/titanet_tiny.yaml) comes mostly from
that padding. The floor sits below the receptive field because short real utterances
still carry a voice (tinyspeech's shortest is 0.79 s). The verbs refuse a shorter
input by name, from the audio header (or the manifest's duration) before the model
is loaded. Every input is checked (missing, unreadable, too short) before any work,
and outputs are written only at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    check_output,
    load_speaker_model,
    positive_int,
)
from minispeech.core.checkpoint import atomic_write

MIN_SECONDS = 0.25  # the shortest input a speaker verb embeds (module docstring)


# ---------------------------------------------------------------- shared pieces


def check_audio(path: str, where: str = "") -> float:
    """The duration of an audio file, which must be readable and >= MIN_SECONDS;
    `where` ("trials.txt:3: ") prefixes the message."""
    from minispeech.audio.io import AudioError, audio_info

    try:
        seconds = audio_info(path).duration
    except AudioError as error:
        raise CommandError(f"{where}{error}") from None
    check_length(path, seconds, where)
    return seconds


def check_length(path: str, seconds: float, where: str = "") -> None:
    if seconds < MIN_SECONDS:
        raise CommandError(
            f"{where}{path}: {seconds:.3f} s of audio is too short for a speaker "
            f"embedding (minimum {MIN_SECONDS} s)"
        )


def manifest_rows(manifest: str, need_speaker: bool = False) -> list[dict]:
    """The rows of a manifest (segments checked against their files), each at
    least MIN_SECONDS long, with a speaker when `need_speaker`."""
    from minispeech.data import AudioTextDataset, ManifestError
    from minispeech.speaker.dataset import row_speaker

    dataset = AudioTextDataset(manifest, tokenizer=None, sample_rate=None)
    for row, place in zip(dataset.rows, dataset.places):
        if need_speaker and row_speaker(row) is None:
            raise ManifestError([f"{place}: speaker: missing (or NeMo's label)"])
        check_length(row["audio_filepath"], float(row["duration"]), f"{place}: ")
    return dataset.rows


def file_rows(paths: list[str]) -> list[dict]:
    """Audio files as manifest-like rows, each checked (readable, long enough)."""
    return [{"audio_filepath": p, "duration": check_audio(p)} for p in paths]


def embed_rows(model, rows: list[dict], batch_size: int, scoring: bool = False):
    """Embeddings (N, E) of rows (files, or segments with offset), in order, or
    with `scoring` the vectors (N, E') that scores compare (the model's backend);
    `batch_size` waves are in memory at a time."""
    import torch

    from minispeech.speaker.model import row_input

    embed = model.scoring_embeddings if scoring else model.get_embeddings
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        inputs = [row_input(row, model.sample_rate) for row in chunk]
        out.append(embed(inputs, batch_size=batch_size))  # (B, E)
    return torch.cat(out)  # (N, E)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="speaker model file (.nemo: TitaNet, ECAPA)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def unit_float(text: str) -> float:
    """argparse type of a score or a fraction: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


# ---------------------------------------------------------------- embed
def embed_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech embed",
        description="Write the speaker embeddings (N, E) of audio files (then the "
        "manifest's lines) to a .npy file, in input order.",
    )
    add_model_args(parser)
    parser.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument("--manifest", help="also embed every line of a manifest")
    parser.add_argument("--out", required=True, help="embeddings file (.npy)")
    args = parser.parse_args(argv)
    if not args.audio and not args.manifest:
        parser.error("give audio files or --manifest")
    check_output(args.out)
    rows = file_rows(args.audio)
    rows += manifest_rows(args.manifest) if args.manifest else []
    model = load_speaker_model(args.model, args.device)
    start = time.perf_counter()
    embs = embed_rows(model, rows, args.batch_size).numpy()  # (N, E)
    seconds = time.perf_counter() - start
    import numpy as np

    # np.save to the open file: given a path it would append ".npy"
    out = atomic_write(args.out, lambda file: np.save(file, embs))
    audio_s = sum(float(row["duration"]) for row in rows)
    print(
        f"{len(embs)} embeddings of size {embs.shape[1]} from {audio_s:.1f} s of "
        f"audio ({seconds:.1f} s) -> {out}"
    )
    return 0


# ---------------------------------------------------------------- verify
def verify_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech verify",
        description="Same speaker? Score two files (NeMo's (cos + 1) / 2) against "
        "--threshold, or every line of a VoxCeleb1-style trials file (EER, minDCF).",
    )
    add_model_args(parser)
    parser.add_argument("audio", nargs="*", help="two audio files: A B")
    parser.add_argument("--threshold", type=unit_float, default=0.7)
    parser.add_argument("--trials", help="trials file: `label enrollment test` lines")
    parser.add_argument("--root", help="folder of the trial paths (default: its own)")
    parser.add_argument("--out", help="--trials: write `label a b score` lines here")
    args = parser.parse_args(argv)
    if args.trials:
        if args.audio:
            parser.error("give two audio files or --trials, not both")
        return verify_trials(args)
    if len(args.audio) != 2:
        parser.error(f"give two audio files (got {len(args.audio)}) or --trials")
    if args.root or args.out:
        parser.error("--root and --out go with --trials")
    for path in args.audio:
        check_audio(path)
    model = load_speaker_model(args.model, args.device)
    embs = model.scoring_embeddings(args.audio, batch_size=1)  # the backend's
    score = model.similarity(embs[0], embs[1])
    same = score >= args.threshold
    decision = "same speaker" if same else "different speakers"
    sign = ">=" if same else "<"
    print(f"score {score:.4f} {sign} threshold {args.threshold:g}: {decision}")
    return 0


def read_trials(path: str, root: str | None) -> list[tuple[int, str, str, int]]:
    """(label, enrollment path, test path, line number) of each trial line, paths
    resolved against `root` (default: the file's folder); every line checked."""
    trials_file = Path(path)
    if not trials_file.is_file():
        raise CommandError(f"--trials {path}: no such file")
    folder = Path(root) if root else trials_file.absolute().parent
    if not folder.is_dir():
        raise CommandError(f"--root {root}: no such folder")
    trials = []
    lines = trials_file.read_text(encoding="utf-8-sig").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path}:{number}: "
        if len(fields) != 3:
            raise CommandError(
                f"{where}expected `label enrollment test`, got {len(fields)} fields"
            )
        if fields[0] not in ("0", "1"):
            raise CommandError(f"{where}label {fields[0]!r}: must be 0 or 1")
        a, b = (str(folder / name) for name in fields[1:])  # absolute names stay
        trials.append((int(fields[0]), a, b, number))
    if not trials:
        raise CommandError(f"{path}: no trials (empty file)")
    return trials


def verify_trials(args: argparse.Namespace) -> int:
    """`verify --trials`: score every trial, print EER and minDCF, keep --out."""
    from minispeech.metrics.eer import eer, min_dcf

    if args.out:
        check_output(args.out)
    trials = read_trials(args.trials, args.root)
    labels = [label for label, _, _, _ in trials]
    if len(set(labels)) < 2:
        raise CommandError(
            f"{args.trials}: needs target (1) and non-target (0) trials for an EER"
        )
    # 1) every file once, in first-use order, checked before the model loads
    files: dict[str, int] = {}
    for _, a, b, number in trials:
        for path in (a, b):
            if path not in files:
                check_audio(path, f"{args.trials}:{number}: ")
                files[path] = len(files)
    model = load_speaker_model(args.model, args.device)
    start = time.perf_counter()
    rows = [{"audio_filepath": path} for path in files]
    embs = embed_rows(model, rows, args.batch_size, scoring=True)  # (N_files, E')
    # 2) NeMo's score of each trial
    scores = [model.similarity(embs[files[a]], embs[files[b]]) for _, a, b, _ in trials]
    seconds = time.perf_counter() - start
    n_target = sum(labels)
    print(
        f"{args.trials}: {len(trials)} trials ({n_target} target, "
        f"{len(trials) - n_target} non-target), {len(files)} files ({seconds:.1f} s)"
    )
    print(f"  {'EER':<12} {100 * eer(scores, labels):.2f}%")
    for p_target in (0.01, 0.05):
        value = min_dcf(scores, labels, p_target=p_target)
        print(f"  {f'minDCF@{p_target:g}':<12} {value:.4f}")
    if args.out:
        lines = Path(args.trials).read_text(encoding="utf-8-sig").splitlines()
        text = "".join(
            f"{' '.join(lines[number - 1].split())} {score:.6f}\n"
            for (_, _, _, number), score in zip(trials, scores)
        )
        out = atomic_write(args.out, lambda file: file.write(text.encode()))
        print(f"scores written to {out}")
    return 0


# ---------------------------------------------------------------- identify
def identify_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech identify",
        description="Closed-set identification: enrol the speakers of a manifest "
        "(mean normalised embedding per speaker), then print each file's closest "
        "speaker and its score (path TAB speaker TAB score).",
    )
    add_model_args(parser)
    parser.add_argument("audio", nargs="+", help="audio files to identify")
    parser.add_argument(
        "--enroll", required=True, help="manifest of known voices (with speaker)"
    )
    args = parser.parse_args(argv)
    enroll_rows = manifest_rows(args.enroll, need_speaker=True)
    for path in args.audio:
        check_audio(path)
    model = load_speaker_model(args.model, args.device)
    enrolled = model.enroll(enroll_rows)  # {speaker: (E,)}
    for path in args.audio:
        speaker, score = model.identify(path, enrolled)
        print(f"{path}\t{speaker}\t{score:.4f}")
    return 0


# ---------------------------------------------------------------- corpus trials
def trials_verb(argv: list[str]) -> int:
    """`corpus trials`: a VoxCeleb1-style trial list from a manifest's speakers."""
    parser = ArgumentParser(
        prog="minispeech corpus trials",
        description="Write a verification trial list (`label enrollment test`, "
        "half targets; of the non-targets, --same-gender of them between speakers "
        "of one gender) from a manifest with speaker (and gender) fields.",
    )
    parser.add_argument("manifest", help="JSONL manifest with a speaker field")
    parser.add_argument("--out", required=True, help="trials file to write")
    parser.add_argument("--n", type=positive_int, default=1000, help="trials (even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same-gender", type=unit_float, default=0.5)
    parser.add_argument(
        "--absolute",
        action="store_true",
        help="absolute paths (default: relative to the --out folder)",
    )
    args = parser.parse_args(argv)
    check_output(args.out)
    from minispeech.data import read_manifest
    from minispeech.speaker.trials import verification_trials, write_trials

    required = ("audio_filepath", "duration", "speaker")
    rows = read_manifest(args.manifest, required=required)
    try:
        trials = verification_trials(rows, args.n, args.seed, args.same_gender)
        out = write_trials(args.out, trials, absolute=args.absolute)
    except ValueError as error:
        raise CommandError(f"{args.manifest}: {error}") from None
    n_target = sum(label for label, _, _ in trials)
    print(
        f"{len(trials)} trials ({n_target} target, {len(trials) - n_target} "
        f"non-target) from {len(rows)} utterances -> {out}"
    )
    return 0


def far_like_verb(argv: list[str]) -> int:
    """`corpus far-like`: far's make from dev's own variants, for tuning on dev."""
    parser = ArgumentParser(
        prog="minispeech corpus far-like",
        description="Speak MANIFEST's sentences (dev's) with dev's unseen variants at "
        "far's extreme pitches and rates, 2/3 of the files mixed with far's noise "
        "conditions: Opus files and far_like.jsonl (needs espeakng-loader).",
    )
    parser.add_argument("manifest", help="manifest whose texts are read (dev)")
    parser.add_argument("--out", required=True, help="folder for audio/ and the jsonl")
    parser.add_argument("--per-speaker", type=positive_int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from minispeech.data.corpus import synthesize
    from minispeech.data.corpus_far import far_like_plan, write_far
    from minispeech.data.manifest import read_manifest, write_manifest

    texts = sorted({str(r["text"]) for r in read_manifest(args.manifest)})
    if len(texts) < args.per_speaker:
        raise CommandError(f"{args.manifest}: {len(texts)} texts, fewer than "
                           f"--per-speaker {args.per_speaker}")  # fmt: skip
    plan = far_like_plan(texts, args.per_speaker, args.seed)
    clean = [synthesize(text, speaker, utt) for speaker, utt, text, _ in plan]
    rows = write_far(Path(args.out), plan, clean, args.seed)
    path = write_manifest(Path(args.out) / "far_like.jsonl", rows)
    print(f"wrote {path} ({len(rows)} utterances, {len(rows) // args.per_speaker} "
          "speakers)")  # fmt: skip
    return 0
