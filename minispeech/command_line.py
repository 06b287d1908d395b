"""What every verb of the `minispeech` command uses: one-line argument errors, counts,
output checks, loading a model file (minispeech's or NeMo's, with config overrides) on a
device, and scoring a dataset with the training loop's validation.

`cli.py` (the verb table and the generic verbs) and each task's `commands.py` import
this module; it imports no verb, so the command line has no circles.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minispeech.errors import MinispeechError


class CommandError(MinispeechError):
    """A command-line argument that cannot be used (an output path that is a folder,
    a model of the wrong kind); the message names it."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error, `minispeech <verb>: <problem> (see --help)`,
    and exit code 2 (argparse's own), instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type of a count such as --batch-size: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def check_output(path: str) -> None:
    """An output file must be writable as a file: not a folder."""
    if Path(path).is_dir():
        raise CommandError(f"--out {path}: is a folder, not a file")


def load_model(path: str, device: str, overrides=(), trust_targets: bool = False):
    """A model file (minispeech's or NeMo's) on `device`, in eval mode, rebuilt with
    `overrides` applied to its config when there are any."""
    from minispeech.nemo import load_model as load_any

    device = choose_device(device)
    model = load_any(path, map_location=device, trust_targets=trust_targets)
    if overrides:
        model = with_overrides(model, list(overrides), f"{path} {' '.join(overrides)}")
    return model.to(device).eval()


def load_speaker_model(path: str, device: str):
    """A model file that must hold a SpeakerModel (minispeech's or NeMo's)."""
    from minispeech.speaker.model import SpeakerModel

    model = load_model(path, device)
    if not isinstance(model, SpeakerModel):
        raise CommandError(
            f"{path}: holds a {type(model).__name__}, not a speaker model "
            "(SpeakerModel: TitaNet or ECAPA)"
        )
    return model


def choose_device(name: str):
    """--device: cpu, cuda (gpu) or auto, as a torch.device."""
    from minispeech.training.distributed import choose_device as choose

    if name.lower() not in ("cpu", "cuda", "gpu", "auto"):
        raise CommandError(f"--device {name}: use cpu, cuda (gpu) or auto")
    try:
        return choose(name)
    except RuntimeError as error:  # CUDA asked for but not available
        raise CommandError(f"--device {name}: {error}") from None


def with_overrides(model, overrides: list[str], source: str):
    """Rebuild `model` from its config with dotted `key=value` overrides and load its
    weights. A key the config lacks is added (the model's own key check names a
    misspelt one and the nearest valid keys); an override that changes the
    architecture fails on the weights, naming the tensors that no longer fit."""
    import copy

    from minispeech.core.checkpoint import load_state_dict_checked
    from minispeech.core.config import get_dotted
    from minispeech.core.overrides import apply_overrides

    cfg = copy.deepcopy(model.cfg)
    items = []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        try:
            get_dotted(cfg, key)
        except KeyError:
            item = item if key.startswith("+") or "=" not in item else "+" + item
        items.append(item)
    cfg = apply_overrides(cfg, items)
    rebuilt = type(model)(cfg)
    load_state_dict_checked(rebuilt, model.state_dict(), strict=True, source=source)
    return rebuilt


def validate(model, dataset, batch_size: int):
    """`compute_validation_loss` of the training loop over `dataset`, in file order,
    on one process -> (metrics, the loader)."""
    import torch

    from minispeech.training.distributed import DistEnv
    from minispeech.training.loop import compute_validation_loss
    from minispeech.training.options import TrainerOptions

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=model.collate
    )
    device = next(model.parameters()).device
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=device)
    metrics = compute_validation_loss(model, loader, TrainerOptions(), env)
    model.eval()  # compute_validation_loss leaves the model in training mode
    return metrics, loader


def summary(manifest: str, dataset, seconds: float) -> str:
    """`dev.jsonl: 3 utterances, 0.1 min of audio (2.0 s, 3x real time)`."""
    text = f"{manifest}: {len(dataset)} utterances"
    durations = getattr(dataset, "durations", None)
    if durations is None:
        return f"{text} ({seconds:.1f} s)"
    audio_s = sum(durations)
    speed = audio_s / max(seconds, 1e-9)
    return f"{text}, {audio_s / 60:.1f} min of audio ({seconds:.1f} s, {speed:.0f}x)"


PEAK = 0.99  # an output louder than full scale is scaled down to this peak


def write_wave(path, wave, sample_rate: int) -> None:
    """Save a 16-bit WAV (folders created); a peak above 1 would be clipped by the
    file, so the wave is scaled down as a whole to peak PEAK instead, with a note."""
    import math

    from minispeech.audio.io import save_audio

    path = Path(path)
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if peak > 1.0:
        wave = wave * (PEAK / peak)
        gain_db = 20 * math.log10(PEAK / peak)
        print(
            f"note: {path.name}: peak {peak:.2f} is above full scale; the file is "
            f"scaled down to peak {PEAK} ({gain_db:+.1f} dB)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_audio(path, wave, sample_rate)
