"""Enhancement verbs of the `minispeech` command.

    minispeech corpus noisy MANIFEST --out DIR [--snr MIN MAX] [--kinds ...] [--seed N]
    minispeech enhance MODEL|wiener|spectral-subtraction NOISY... --out DIR
                       [--manifest M] [--device D]

`enhance` writes one 16-bit WAV per input into DIR, named after the input
(noisy/a.flac -> DIR/a.wav), at the input's sample rate and with its length. MODEL
is an enhancement model file (one with `enhance(wave)` and `sample_rate`: the
masking model, or NeMo's imported); the input is resampled to the model's rate and
the output back. `wiener` and `spectral-subtraction` are the classic baselines of
minispeech/enhancement/classic.py, run at the input's own rate. `--manifest` adds
each line's `noisy_filepath` (else `audio_filepath`) to the inputs.

Clipping: an output whose peak passes 1 would be clipped by the 16-bit file; it is
scaled down as a whole to peak 0.99 instead, and a note names the file and the gain.
Every input is checked (missing, unreadable, two with one name, an output that would
overwrite an input) before any work; the outputs are written only at the end, each
through a temporary file renamed into place.
"""

from __future__ import annotations

import time
from pathlib import Path

from minispeech.audio.noise import NOISE_KINDS
from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    load_model,
    write_wave,
)

CLASSIC = ("wiener", "spectral-subtraction")  # methods that need no model file


def noisy_verb(argv: list[str]) -> int:
    """Write a noisy copy of a manifest: WAVs and `noisy.jsonl` in `--out`."""
    parser = ArgumentParser(
        prog="minispeech corpus noisy",
        description="write a noisy copy of a manifest (WAV + noisy.jsonl)",
    )
    parser.add_argument("manifest")
    parser.add_argument(
        "--out", required=True, help="folder for audio/ and noisy.jsonl"
    )
    parser.add_argument(
        "--snr", type=float, nargs=2, default=[10.0, 10.0], metavar=("MIN", "MAX")
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=NOISE_KINDS,
        default=["white", "pink", "babble"],
        metavar="KIND",
        help=f"noise kinds drawn per utterance, of: {' '.join(NOISE_KINDS)} "
        "(default: white pink babble)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.snr[0] > args.snr[1]:
        parser.error(f"argument --snr: MIN {args.snr[0]} is above MAX {args.snr[1]}")
    from minispeech.enhancement.pairs import write_noisy_copy

    out = write_noisy_copy(args.manifest, args.out, args.seed, args.snr, args.kinds)
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------- enhance
def enhance_verb(argv: list[str]) -> int:
    """Enhance audio files with a model or a classic method into `--out`."""
    parser = ArgumentParser(
        prog="minispeech enhance",
        description="Write enhanced WAVs (same names, rates and lengths as the "
        "inputs) to a folder.",
    )
    parser.add_argument(
        "model", help=f"enhancement model file, or one of: {' '.join(CLASSIC)}"
    )
    parser.add_argument("audio", nargs="*", help="noisy audio files")
    parser.add_argument("--manifest", help="also enhance every line of a manifest")
    parser.add_argument("--out", required=True, help="folder for the enhanced WAVs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    if not args.audio and not args.manifest:
        parser.error("give noisy audio files or --manifest")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"--out {out_dir}: is a file, not a folder")
    inputs = args.audio + (manifest_inputs(args.manifest) if args.manifest else [])
    seconds = check_inputs(inputs, out_dir)
    method = load_method(args.model, args.device)
    start = time.perf_counter()
    outputs = [enhance_file(method, path) for path in inputs]
    elapsed = time.perf_counter() - start
    for path, (wave, sample_rate) in zip(inputs, outputs):
        write_wave(out_dir / f"{Path(path).stem}.wav", wave, sample_rate)
    speed = seconds / max(elapsed, 1e-9)
    print(
        f"wrote {len(inputs)} files to {out_dir} ({seconds:.1f} s of audio in "
        f"{elapsed:.1f} s, {speed:.0f}x real time)"
    )
    return 0


def manifest_inputs(manifest: str) -> list[str]:
    """The audio path of each manifest line: `noisy_filepath`, else `audio_filepath`,
    relative to the manifest's folder; whole files only (no `offset`)."""
    import os

    from minispeech.data.manifest import read_numbered_manifest

    folder = Path(manifest).absolute().parent
    paths = []
    for line, row in read_numbered_manifest(manifest, (), check_audio=False):
        path = row.get("noisy_filepath", row.get("audio_filepath"))
        if not isinstance(path, str) or not path.strip():
            raise CommandError(
                f"{manifest}:{line}: no noisy_filepath or audio_filepath to enhance"
            )
        if "offset" in row:
            raise CommandError(
                f"{manifest}:{line}: a segment (offset); enhance whole files"
            )
        paths.append(os.path.normpath(folder / os.path.expanduser(path)))
    return paths


def check_inputs(inputs: list[str], out_dir: Path) -> float:
    """Every input readable, no two with one output name, no output over an input;
    returns the total seconds of audio."""
    from minispeech.audio.io import AudioError, audio_info

    seconds, names = 0.0, {}
    for path in inputs:
        try:
            seconds += audio_info(path).duration
        except AudioError as error:
            raise CommandError(str(error)) from None
        name = f"{Path(path).stem}.wav"
        if name in names:
            raise CommandError(
                f"{path} and {names[name]} would both be written to {out_dir / name}"
            )
        names[name] = path
        if (out_dir / name).resolve() == Path(path).resolve():
            raise CommandError(
                f"{path}: its output {out_dir / name} would overwrite it"
            )
    return seconds


def load_method(name: str, device: str):
    """(function wave (S,), sample_rate -> enhanced (S,), the rate it needs): a
    model's rate, or None (any rate) for a classic method."""
    if name in CLASSIC:
        from minispeech.enhancement import classic  # imported only when asked for

        function = {
            "wiener": classic.wiener_filter,
            "spectral-subtraction": classic.spectral_subtraction,
        }[name]
        return (lambda wave, sr: function(wave, sample_rate=sr)), None
    if not Path(name).is_file():
        raise CommandError(
            f"{name}: no such model file (or use one of {', '.join(CLASSIC)})"
        )
    model = load_model(name, device)
    if not callable(getattr(model, "enhance", None)) or not hasattr(
        model, "sample_rate"
    ):
        raise CommandError(
            f"{name}: holds a {type(model).__name__}, not an enhancement model (one "
            "with enhance(wave) and sample_rate, such as EnhancementModel)"
        )
    return (lambda wave, sr: model.enhance(wave)), int(model.sample_rate)


def enhance_file(method: tuple, path: str):
    """path -> (enhanced (S,) at the file's rate with its length, the rate)."""
    import torch

    from minispeech.audio.io import load_audio
    from minispeech.audio.resample import resample

    function, model_rate = method
    wave, sample_rate = load_audio(path)  # (S,)
    rate = model_rate or sample_rate
    x = resample(wave, sample_rate, rate) if rate != sample_rate else wave  # (S',)
    with torch.inference_mode():
        y = torch.as_tensor(function(x, rate)).detach().cpu().float()  # (S',)
    if y.dim() != 1:
        raise CommandError(f"{path}: the enhanced signal has shape {tuple(y.shape)}")
    y = resample(y, rate, sample_rate) if rate != sample_rate else y  # (~S,)
    y = y[: wave.numel()]  # resampling rounds the length up
    y = torch.nn.functional.pad(y, (0, wave.numel() - y.numel()))  # (S,)
    if not torch.isfinite(y).all():
        raise CommandError(f"{path}: the enhanced signal has NaN or inf samples")
    return y, sample_rate
