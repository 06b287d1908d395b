"""`import_nemo(path)`: read a NeMo `.nemo` file safely and build the matching model.

The file is read once without trust (`read_checkpoint`: no pickle runs, tar members are
checked); the model family is chosen from the class NeMo saved as `target:` in the
config, and the family's module in this package maps config and weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minispeech.core.checkpoint import read_checkpoint
from minispeech.core.model import restore_from
from minispeech.errors import MinispeechError
from minispeech.nemo import aed, asr, enhancement, fastpitch, hifigan, speaker


class NemoImportError(MinispeechError, ValueError):
    """A NeMo file whose model class or options minispeech cannot reproduce."""


# NeMo model class name -> the function that imports that family
FAMILIES = {
    "EncDecCTCModel": asr.import_asr,
    "EncDecCTCModelBPE": asr.import_asr,
    "EncDecRNNTModel": asr.import_asr,
    "EncDecRNNTBPEModel": asr.import_asr,
    "EncDecMultiTaskModel": aed.import_aed,
    "EncDecSpeakerLabelModel": speaker.import_speaker,
    "EncMaskDecAudioToAudioModel": enhancement.import_enhancement,
    "FastPitchModel": fastpitch.import_fastpitch,
    "HifiGanModel": hifigan.import_hifigan,
}


def import_nemo(path: str | Path, map_location: str | torch.device = "cpu"):
    """Read a NeMo `.nemo` file into the matching minispeech model (eval mode).

    Raises NemoImportError (a ValueError) naming the file when the class or an
    option is not supported.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    target = str(ckpt.config.get("target", ""))
    name = target.rsplit(".", 1)[-1]
    family = FAMILIES.get(name)
    if family is None and not name:  # an old file without `target:`: guess ASR
        family = asr.import_asr
    if family is None:
        supported = ", ".join(sorted(FAMILIES))
        raise NemoImportError(
            f"{path}: NeMo model class {name!r} is not supported (supported: "
            f"{supported})"
        )
    try:
        return family(ckpt, path)
    except ValueError as error:
        if isinstance(error, MinispeechError):
            raise
        raise NemoImportError(" ".join(str(error).split())) from None


def load_model(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    trust_targets: bool = False,
):
    """A minispeech model file (`save_to`) or a NeMo `.nemo` file, in eval mode.

    The config says which: minispeech writes `_target_`, NeMo writes `target:`.
    `trust_targets=True` allows a minispeech file whose class is outside the package.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    if "_target_" in ckpt.config:
        model = restore_from(
            path, map_location=map_location, trust_targets=trust_targets
        )
    else:
        model = import_nemo(path, map_location=map_location)
    return model.to(map_location).eval()
