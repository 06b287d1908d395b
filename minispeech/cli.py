"""The `minispeech` command (also `python -m minispeech`): one verb per task.

    minispeech train CONFIG [key=value ...] [--trust-targets]
    minispeech inspect MODEL_FILE
    minispeech manifest check MANIFEST
    minispeech corpus build [--out DIR] [--seed N] [--jobs N]
    minispeech evaluate MODEL MANIFEST [key=value ...] [--batch-size N] [--out HYPS]
    minispeech transcribe MODEL AUDIO... [--manifest M] [--timestamps]
    minispeech lm MANIFEST... --out LM.arpa [--order 3]
    minispeech embed MODEL AUDIO... [--manifest M] --out EMBS.npy
    minispeech verify MODEL A B [--threshold 0.7] | MODEL --trials T [--out SCORES]
    minispeech identify MODEL --enroll ENROLL.jsonl AUDIO...
    minispeech corpus trials MANIFEST --out TRIALS.txt [--n N] [--seed S]
    minispeech corpus far-like MANIFEST --out DIR [--per-speaker N] [--seed S]
    minispeech diarize SPEAKER_MODEL AUDIO... --out DIR [--num-speakers N] [--vad V]
    minispeech der --ref REF.rttm... --hyp HYP.rttm... [--collar 0.25]
    minispeech corpus conversations MANIFEST --out DIR [--n 12] [--seed S]
    minispeech corpus reordered MANIFEST --out DIR [--seed S]
    minispeech corpus qa [--corpus DIR] [--out DIR] [--seed S] [--per-utterance N]
    minispeech enhance MODEL|wiener|spectral-subtraction NOISY... --out DIR
    minispeech synthesize MODEL --text "..." --out out.wav [--vocoder V] [--pace P]
    minispeech ask MODEL AUDIO... "QUESTION" [--max-new-tokens N]

Verbs live in `VERBS` as "module:function" strings and are imported only when used, so
`minispeech --help` answers at once without importing torch. A task adds its verb with
one line here; its function takes the remaining arguments and returns an exit code.

`evaluate` works for every model: it scores MANIFEST with the model's own validation
protocol (`evaluation_dataset`, `validation_step`, `validation_metrics`, through the
training loop's `compute_validation_loss`), after applying `key=value` overrides to the
model's config (`decoding.strategy=beam decoding.beam_size=8`).

Errors: a `MinispeechError` (bad input: a config key, a manifest line, a model file)
and a bad command line print one line, `minispeech <verb>: <message>`, on stderr and
exit with 2; outputs are written only once everything has worked. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import importlib
import math
import sys
import time

from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    check_output,
    load_model,
    positive_int,
    summary,
    validate,
)
from minispeech.errors import MinispeechError

# verb -> ("module:function", one-line help); imported lazily
VERBS = {
    "train": ("minispeech.cli:train_verb", "train a model from a YAML config"),
    "inspect": ("minispeech.cli:inspect_verb", "show a model file's config and size"),
    "manifest": ("minispeech.cli:manifest_verb", "check a manifest against its audio"),
    "corpus": ("minispeech.cli:corpus_verb", "build the bundled tinyspeech corpus"),
    "evaluate": ("minispeech.cli:evaluate_verb", "a model's metrics on a manifest"),
    "transcribe": ("minispeech.asr.commands:transcribe_verb", "transcribe audio files"),
    "lm": ("minispeech.asr.commands:lm_verb", "train a word n-gram LM on manifests"),
    "embed": ("minispeech.speaker.commands:embed_verb", "speaker embeddings to .npy"),
    "verify": ("minispeech.speaker.commands:verify_verb", "same speaker? (or trials)"),
    "identify": ("minispeech.speaker.commands:identify_verb", "closest enrolled voice"),
    "diarize": (
        "minispeech.diarization.commands:diarize_verb",
        "who spoke when (RTTM)",
    ),
    "der": ("minispeech.diarization.commands:der_verb", "diarization error rate"),
    "enhance": ("minispeech.enhancement.commands:enhance_verb", "denoise audio files"),
    "synthesize": ("minispeech.tts.commands:synthesize_verb", "text to speech (WAV)"),
    "ask": ("minispeech.speechlm.commands:ask_verb", "ask a SpeechLM about audio"),
}


def usage() -> str:
    lines = [
        "usage: minispeech <verb> [arguments]   (minispeech <verb> --help for more)",
        "",
    ]
    lines += [f"  {verb:<10} {help_text}" for verb, (_, help_text) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the exit code (0 on success, 2 on bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        near = difflib.get_close_matches(verb, list(VERBS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        verbs = ", ".join(VERBS)
        message = f"unknown verb {verb!r}{hint}; verbs: {verbs} (see minispeech --help)"
        print(f"minispeech: {message}", file=sys.stderr)
        return 2
    module_name, function_name = VERBS[verb][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(function(rest) or 0)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        if isinstance(exit_.code, int):
            return exit_.code
        print(f"minispeech {verb}: {exit_.code}", file=sys.stderr)
        return 2
    except MinispeechError as error:
        print(f"minispeech {verb}: {error}", file=sys.stderr)
        return 2


def train_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech train",
        description="Train the model of a YAML config (sections model, trainer, "
        "exp_manager). Multi-GPU: torchrun --nproc_per_node=N -m minispeech train ...",
    )
    parser.add_argument("config", help="YAML file, e.g. configs/asr/conformer_ctc.yaml")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value (e.g. trainer.max_steps=100) or +new.key=value",
    )
    parser.add_argument(
        "--trust-targets",
        action="store_true",
        help="allow a model _target_ outside the minispeech package",
    )
    args = parser.parse_intermixed_args(argv)
    from minispeech.core.config import config_errors, load_config
    from minispeech.training.loop import train

    cfg = load_config(args.config, args.overrides)
    with config_errors(args.config):  # a bad value names the file it came from
        path = train(cfg, trust_targets=args.trust_targets)
    print(f"model file: {path}")
    return 0


def inspect_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech inspect",
        description="Read a model file (.nemo layout; NeMo's own files too) without "
        "building the model: print its class, config, parameter count and artifacts.",
    )
    parser.add_argument("file", help="model file, e.g. experiments/run/run.nemo")
    args = parser.parse_args(argv)
    from minispeech.core.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(args.file)
    print(describe(args.file, checkpoint))
    return 0


def describe(path, checkpoint) -> str:
    """The text of `minispeech inspect`: class, size, artifacts, then the config."""
    config = checkpoint.config
    tensors = checkpoint.state_dict.values()
    n_params = sum(t.numel() for t in tensors if t.is_floating_point())
    lines = [
        f"{path}",
        f"  class:      {config.get('_target_') or config.get('target') or '?'}",
        f"  parameters: {n_params:,} in {len(checkpoint.state_dict)} tensors",
        f"  artifacts:  {', '.join(checkpoint.artifacts) or 'none'}",
        "  config:",
    ]
    for key, value in config.items():
        if key not in ("_target_", "target"):
            lines.append(f"    {key}: {_short(value)}")
    return "\n".join(lines)


def _short(value, width: int = 70) -> str:
    """One line per config entry: a section's _target_ and keys, a long list's size."""
    if isinstance(value, dict):
        target = value.get("_target_")
        keys = ", ".join(str(k) for k in value if k != "_target_")
        text = f"{target} ({keys})" if target else f"{{{keys}}}"
    elif isinstance(value, list) and len(value) > 8:
        text = f"[{len(value)} items: {', '.join(map(repr, value[:4]))}, ...]"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def manifest_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech manifest", description="Work with JSONL manifests."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser(
        "check",
        help="validate every line and compare durations "
        "with the audio headers; exit 1 if there are problems",
    )
    check.add_argument("manifest", help="JSONL manifest file")
    args = parser.parse_args(argv)
    from minispeech.data.manifest import check_manifest

    report = check_manifest(args.manifest)
    print(report)
    return 0 if report.ok else 1


def corpus_verb(argv: list[str]) -> int:
    """`corpus build` (`python -m minispeech.data.corpus`; `--out` defaults to
    data/tinyspeech) and the derived sets a task owns (`corpus noisy`, `corpus
    trials`, `corpus far-like`, `corpus conversations`, `corpus reordered`, `corpus
    qa`)."""
    action = argv[0] if argv else None
    if action == "noisy":
        from minispeech.enhancement.commands import noisy_verb

        return noisy_verb(argv[1:])
    if action == "trials":
        from minispeech.speaker.commands import trials_verb

        return trials_verb(argv[1:])
    if action == "far-like":
        from minispeech.speaker.commands import far_like_verb

        return far_like_verb(argv[1:])
    if action == "conversations":
        from minispeech.diarization.commands import conversations_verb

        return conversations_verb(argv[1:])
    if action == "reordered":
        from minispeech.tts.commands import reordered_verb

        return reordered_verb(argv[1:])
    if action == "qa":
        from minispeech.speechlm.commands import qa_verb

        return qa_verb(argv[1:])
    if action not in ("build", "-h", "--help"):
        what = f"unknown action {action!r}" if action else "no action given"
        raise CommandError(
            f"{what}; use build, noisy, trials, far-like, conversations, reordered "
            "or qa (see minispeech --help)"
        )
    if action == "build" and "--out" not in argv and not {"-h", "--help"} & set(argv):
        argv = [*argv, "--out", "data/tinyspeech"]
    from minispeech.data.corpus import main as corpus_main

    return corpus_main(argv)


def evaluate_verb(argv: list[str]) -> int:
    """Score MODEL on MANIFEST with the model's own validation protocol."""
    from minispeech.asr.commands import (
        add_decoding_args,
        decoding_overrides,
        write_hypotheses,
    )

    parser = ArgumentParser(
        prog="minispeech evaluate",
        description="Score a model file (minispeech or NeMo .nemo) on a manifest with "
        "the model's validation protocol and print its metrics (val_loss, val_wer, "
        "val_cer for ASR). Segments (offset/duration lines) are scored as segments.",
    )
    parser.add_argument("model", help="model file (.nemo)")
    parser.add_argument("manifest", help="JSONL manifest (for ASR: audio and text)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="model config key=value, e.g. decoding.strategy=beam "
        "decoding.beam_size=8 decoding.lm_path=lm.arpa",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--trust-targets",
        action="store_true",
        help="allow a model class outside the minispeech package",
    )
    parser.add_argument("--out", help="ASR: write hypotheses here (JSONL, pred_text)")
    add_decoding_args(parser)
    args = parser.parse_intermixed_args(argv)
    if args.out:
        check_output(args.out)
    overrides = [*decoding_overrides(args), *args.overrides]
    model = load_model(args.model, args.device, overrides, args.trust_targets)
    dataset = model.evaluation_dataset(args.manifest)
    start = time.perf_counter()
    metrics, loader = validate(model, dataset, args.batch_size)
    seconds = time.perf_counter() - start
    print(summary(args.manifest, dataset, seconds))
    for name, value in metrics.items():
        # NaN means undefined here (a speaker set with no training class has no
        # classification loss): say so instead of printing "nan"
        shown = (
            f"{value:.4f}" if math.isfinite(value) else "n/a (undefined on this set)"
        )
        print(f"  {name:<12} {shown}")
    if args.out:
        path = write_hypotheses(model, loader, dataset, args.out)
        print(f"hypotheses written to {path}")
    return 0
