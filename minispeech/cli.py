"""The `minispeech` command (also `python -m minispeech`): one verb per task.

    minispeech train CONFIG [key=value ...] [--trust-targets]
    minispeech inspect MODEL_FILE
    minispeech manifest check MANIFEST
    minispeech corpus build [--out DIR] [--seed N] [--jobs N]
    minispeech evaluate MODEL MANIFEST [--out HYPS.jsonl]
    minispeech transcribe MODEL AUDIO... [--manifest M] [--timestamps]
    minispeech lm MANIFEST... --out LM.arpa [--order 3]

Verbs live in `VERBS` as "module:function" strings and are imported only when used, so
`minispeech --help` answers at once without importing torch. A task adds its verb with
one line here; its function takes the remaining arguments and returns an exit code.
Errors from minispeech itself (a bad config, a refused model file) print one clear line
instead of a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

# verb -> ("module:function", one-line help); imported lazily
VERBS = {
    "train": ("minispeech.cli:train_verb", "train a model from a YAML config"),
    "inspect": (
        "minispeech.cli:inspect_verb",
        "show a model file's config, size and artifacts",
    ),
    "manifest": (
        "minispeech.cli:manifest_verb",
        "check a JSONL manifest against its audio",
    ),
    "corpus": ("minispeech.cli:corpus_verb", "build the bundled tinyspeech corpus"),
    "evaluate": (
        "minispeech.asr.commands:evaluate_verb",
        "WER/CER of an ASR model on a manifest",
    ),
    "transcribe": ("minispeech.asr.commands:transcribe_verb", "transcribe audio files"),
    "lm": (
        "minispeech.asr.commands:lm_verb",
        "train a word n-gram LM on manifest text",
    ),
}


def usage() -> str:
    lines = [
        "usage: minispeech <verb> [arguments]   (minispeech <verb> --help for more)",
        "",
    ]
    lines += [f"  {verb:<10} {help_text}" for verb, (_, help_text) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the exit code (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        near = difflib.get_close_matches(verb, list(VERBS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        print(f"minispeech: unknown verb {verb!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name = VERBS[verb][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(function(rest) or 0)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 1
    except (ValueError, RuntimeError, OSError) as error:
        if not type(error).__module__.startswith("minispeech"):
            raise
        print(f"minispeech {verb}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def train_verb(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="minispeech train",
        description="Train the model of a YAML config (sections model, trainer, "
        "exp_manager). Multi-GPU: torchrun --nproc_per_node=N -m minispeech train ...",
    )
    parser.add_argument("config", help="YAML file, e.g. configs/asr/conformer_ctc.yaml")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value (e.g. trainer.max_steps=100)" " or +new.key=value",
    )
    parser.add_argument(
        "--trust-targets",
        action="store_true",
        help="allow a model _target_ outside the minispeech package",
    )
    args = parser.parse_intermixed_args(argv)
    from minispeech.core.config import load_config
    from minispeech.training.loop import train

    path = train(
        load_config(args.config, args.overrides), trust_targets=args.trust_targets
    )
    print(f"model file: {path}")
    return 0


def inspect_verb(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
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
    parser = argparse.ArgumentParser(
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
    data/tinyspeech) and the derived sets a task owns (`corpus noisy`)."""
    if argv[:1] == ["noisy"]:
        from minispeech.enhancement.commands import noisy_verb

        return noisy_verb(argv[1:])
    if (
        argv[:1] == ["build"]
        and "--out" not in argv
        and not {"-h", "--help"} & set(argv)
    ):
        argv = [*argv, "--out", "data/tinyspeech"]
    from minispeech.data.corpus import main as corpus_main

    return corpus_main(argv)
