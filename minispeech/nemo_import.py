"""Load a real NVIDIA NeMo `.nemo` ASR checkpoint into minispeech modules.

A `.nemo` file is a tar of `model_config.yaml` and `model_weights.ckpt` (read safely by
`minispeech.checkpoint.read_checkpoint`). This module maps its `preprocessor:` section
onto `MelSpectrogram` and its `encoder:` section onto `ConformerEncoder` (nemo_config.py
fills in NeMo's defaults and refuses what cannot be mapped), then renames the state-dict
keys. Because minispeech keeps NeMo's module names, the encoder mapping is the identity
after stripping the `encoder.` prefix; the preprocessor's saved window and filterbank
are recomputed, not loaded. The decoder / joint weights are kept aside in
`NemoModel.other_state_dict` for the CTC and transducer heads to pick up.
"""

from pathlib import Path

import torch
from torch import nn

from minispeech.nemo_config import (
    encoder_from_nemo_config,
    preprocessor_from_nemo_config,
)

# tensors NeMo saves that minispeech recomputes from the config
RECOMPUTED = ("preprocessor.featurizer.window", "preprocessor.featurizer.fb")


class NemoModel(nn.Module):
    """What `import_nemo` returns: NeMo's front end and encoder, in minispeech."""

    def __init__(
        self, preprocessor: nn.Module, encoder: nn.Module, cfg: dict, other: dict
    ):
        super().__init__()
        self.preprocessor = preprocessor
        self.encoder = encoder
        self.cfg = cfg  # the full NeMo model config (a dict)
        self.other_state_dict = other  # decoder / joint / ... tensors, NeMo's key names

    def forward(self, audio: torch.Tensor, audio_lens: torch.Tensor):
        """audio (B, S), audio_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""
        feats, feat_lens = self.preprocessor(audio, audio_lens)  # (B, M, T)
        return self.encoder(feats, feat_lens)


def split_state_dict(state_dict: dict, prefix: str) -> tuple[dict, dict]:
    """Keys under `prefix.` with the prefix removed, and all the other keys."""
    inside, outside = {}, {}
    for key, value in state_dict.items():
        if key.startswith(prefix + "."):
            inside[key[len(prefix) + 1 :]] = value
        else:
            outside[key] = value
    return inside, outside


def map_encoder_state_dict(state_dict: dict) -> dict:
    """NeMo `encoder.*` tensors -> ConformerEncoder state dict (same names)."""
    encoder_sd, _ = split_state_dict(state_dict, "encoder")
    return encoder_sd


def load_module_state(module: nn.Module, state_dict: dict, what: str, path) -> None:
    """Strict load with an error that lists what does not fit, naming the file."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: {what} weights do not fit the config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    module.load_state_dict(state_dict, strict=True)


def import_nemo(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> NemoModel:
    """Read a NeMo `.nemo` ASR model: NemoModel (preprocessor, encoder, cfg), in eval.

    Raises ValueError naming the file and the unsupported options if the model uses
    something minispeech cannot reproduce.
    """
    from minispeech.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path, map_location=map_location)
    cfg = ckpt.config
    for section in ("preprocessor", "encoder"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"{path}: model config has no {section!r} section")
    try:
        preprocessor = preprocessor_from_nemo_config(cfg["preprocessor"])
        encoder = encoder_from_nemo_config(cfg["encoder"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    encoder_sd, rest = split_state_dict(ckpt.state_dict, "encoder")
    load_module_state(encoder, encoder_sd, "encoder", path)
    other = {k: v for k, v in rest.items() if k not in RECOMPUTED}
    return NemoModel(preprocessor, encoder, cfg, other).eval()
