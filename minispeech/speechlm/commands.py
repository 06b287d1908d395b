"""SpeechLM verbs of the `minispeech` command.

    minispeech corpus qa [--corpus data/tinyspeech] [--out data/tinyspeech_qa]
                         [--seed 0] [--per-utterance 3]

`corpus qa` writes question-answer manifests about the corpus's recordings
(minispeech/speechlm/qa.py): OUT/train.jsonl, dev.jsonl, test.jsonl and far.jsonl (far
asked like test: every type with a train and with the held-out phrasing), with audio
paths relative to OUT. Every manifest is read and every question built before any file
is written; it then prints, per file and question type, the rows and the
majority-answer baseline as Markdown tables.

Imports only the command-line helpers at module level, so `minispeech --help` stays
instant; the work is imported when a verb runs.
"""

from __future__ import annotations

from pathlib import Path

from minispeech.command_line import ArgumentParser, CommandError, positive_int

# output file -> the question set asked (qa.SPLITS); far is a second test set
QA_FILES = {"train": "train", "dev": "dev", "test": "test", "far": "test"}


def qa_verb(argv: list[str]) -> int:
    """Question-answer manifests about the corpus's recordings, for a SpeechLM."""
    parser = ArgumentParser(
        prog="minispeech corpus qa",
        description="questions about each recording of a tinyspeech-style corpus "
        "(text, speaker, gender) with their answers: train/dev/test/far.jsonl in OUT",
    )
    parser.add_argument("--corpus", default="data/tinyspeech", help="corpus folder")
    parser.add_argument("--out", default="data/tinyspeech_qa", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="train question draw")
    parser.add_argument(
        "--per-utterance", type=positive_int, default=3, help="train questions (1..9)"
    )
    args = parser.parse_args(argv)
    if args.per_utterance > 9:
        parser.error(f"argument --per-utterance: at most 9, got {args.per_utterance}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: is a file, not a folder")
    from minispeech.data.manifest import read_manifest, write_manifest
    from minispeech.speechlm.qa import baseline_table, qa_rows

    made = {}
    for name, split in QA_FILES.items():
        path = Path(args.corpus) / f"{name}.jsonl"
        rows = read_manifest(path, ("audio_filepath", "duration", "text", "speaker"))
        made[name] = (len(rows), qa_rows(rows, split, args.seed, args.per_utterance))
    for name, (n_utterances, rows) in made.items():
        path = write_manifest(out / f"{name}.jsonl", rows, relative_to=out)
        print(f"\nwrote {path}: {len(rows)} questions about {n_utterances} utterances")
        print(baseline_table(rows))
    return 0


def ask_verb(argv: list[str]) -> int:
    """Answer a question about each audio file with a SpeechLM model file."""
    parser = ArgumentParser(
        prog="minispeech ask",
        description="Ask a SpeechLM (SALM) model file a question about each audio file "
        "and print path TAB answer. The question is put in the model's prompt format "
        "unless it holds the <|audio|> placeholder itself.",
    )
    parser.add_argument("model", help="SpeechLM model file (.nemo)")
    parser.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument("question", help='e.g. "what day is mentioned"')
    parser.add_argument("--max-new-tokens", type=positive_int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_intermixed_args(argv)
    if not args.question.strip():
        parser.error("the question is empty")
    from minispeech.command_line import load_model

    model = load_model(args.model, args.device)
    if not hasattr(model, "answer"):
        raise CommandError(f"{args.model}: a {type(model).__name__}, not a SpeechLM")
    gen = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    try:
        answers = model.answer(args.audio, args.question, **gen)
    except ValueError as error:  # a prompt with two placeholders, ...
        raise CommandError(str(error)) from None
    for path, answer in zip(args.audio, answers):
        print(f"{path}\t{answer}")
    return 0
