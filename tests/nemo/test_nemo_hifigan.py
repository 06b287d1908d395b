"""import_nemo on NeMo's HiFi-GAN vocoder: hifigan_tiny saved by the real NeMo toolkit
(shared/nemo_reference/hifigan_tiny*, README_tasks.md "HiFi-GAN": V1 generator with
upsample_initial_channel 32, 22.05 kHz FilterbankFeatures with exact_pad, weight norm
stored as weight_g/weight_v, discriminators removed from the file).

NeMo's arrays: `audio` (2, 5512) and `audio_lens`, `mel` (2, 80, 21) and `mel_len` from
the model's own FilterbankFeatures, and per case (`single_0`: item 0 alone,
`batch_01`: both) `generator_out` (B, 1, 5376) and `convert_spectrogram_to_audio`
(B, 5376). Old-style weight-norm and spectral-norm keys, as NeMo files holding
discriminators store them, are checked on modules built here with torch's old hooks.
"""

import copy

import numpy as np
import pytest
import torch
from test_nemo_speaker import write_nemo

from minispeech.core.model import SpeechModel
from minispeech.nemo import NemoImportError, import_nemo
from minispeech.nemo.hifigan import hifigan_config, nemo_state_dict
from minispeech.tts.hifigan_model import HifiGanModel

ATOL = 1e-4  # the brief's bound; measured: mel 7.6e-6, generator output 0.0


@pytest.fixture
def hifigan(nemo_ref):
    """The imported model and NeMo's arrays."""
    model = import_nemo(nemo_ref / "hifigan_tiny.nemo")
    return model, np.load(nemo_ref / "hifigan_tiny_io.npz")


def t(array):
    return torch.from_numpy(np.asarray(array))


def max_error(ours, theirs):
    return float(np.abs(ours.detach().numpy() - np.asarray(theirs)).max())


def test_imports_as_a_synthesis_only_hifigan(nemo_ref, hifigan):
    model, _ = hifigan
    assert isinstance(model, HifiGanModel) and not model.training
    assert model.mpd is None and model.msd is None  # not in the file
    assert model.num_parameters() == 72410  # hifigan_tiny_io.json n_params
    assert model.sample_rate == 22050
    layout = [
        line.split("\t")[0] for line in open(nemo_ref / "hifigan_tiny_state_dict.txt")
    ]
    renamed = [k for k in nemo_state_dict(dict.fromkeys(layout)) if "melspec" not in k]
    # minispeech's step count, then NeMo's names in NeMo's order, renamed
    assert list(model.state_dict()) == ["trained_steps", *renamed]


def test_mel_matches_nemo(hifigan):
    model, ref = hifigan
    mel, mel_lens = model.audio_to_melspec_precessor(
        t(ref["audio"]), t(ref["audio_lens"])
    )
    assert mel.shape == (2, 80, 21)  # 21 frames in the tensor, 20 and 14 valid
    assert mel_lens.tolist() == ref["mel_len"].tolist()
    assert max_error(mel, ref["mel"]) <= ATOL


@pytest.mark.parametrize("case, items", [("single_0", [0]), ("batch_01", [0, 1])])
def test_generator_matches_nemo(hifigan, case, items):
    model, ref = hifigan
    mel = t(ref["mel"][items])
    with torch.no_grad():
        out = model(mel)  # (B, 1, 21 * 256)
    assert out.shape == ref[f"{case}/generator_out"].shape
    assert max_error(out, ref[f"{case}/generator_out"]) <= ATOL
    audio = model.convert_spectrogram_to_audio(mel)
    assert max_error(audio, ref[f"{case}/convert_spectrogram_to_audio"]) <= ATOL


def test_end_to_end_and_restore(hifigan, tmp_path):
    model, ref = hifigan
    with torch.no_grad():
        _, _, wave = model.generate(t(ref["audio"]), t(ref["audio_lens"]))
    expected = ref["batch_01/generator_out"][..., :5376]
    assert max_error(wave[..., :5376], expected) <= ATOL
    restored = SpeechModel.restore_from(model.save_to(tmp_path / "hifigan.nemo"))
    mel = t(ref["mel"])
    torch.testing.assert_close(
        restored.convert_spectrogram_to_audio(mel),
        model.convert_spectrogram_to_audio(mel),
    )


# ---------------------------------------------------------------- built here


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_old_style_weight_and_spectral_norm_keys_load():
    """torch's old hooks store weight_g/weight_v (weight norm) and weight_orig/
    weight_u/weight_v (spectral norm); renamed, they give the same outputs."""
    old = torch.nn.utils
    for make in (old.weight_norm, old.spectral_norm):
        torch.manual_seed(0)
        source = make(torch.nn.Conv1d(3, 4, 5)).eval()
        source(torch.randn(1, 3, 9))  # no-op in eval; u, v as saved
        ours = torch.nn.Conv1d(3, 4, 5)
        param = torch.nn.utils.parametrizations
        ours = (param.weight_norm if make is old.weight_norm else param.spectral_norm)(
            ours
        )
        ours.load_state_dict(nemo_state_dict(source.state_dict()))
        x = torch.randn(2, 3, 20)
        with torch.no_grad():
            torch.testing.assert_close(ours.eval()(x), source(x))


def nemo_config(path):
    from minispeech.core.checkpoint import read_checkpoint

    return read_checkpoint(path).config


def test_a_file_with_discriminators_imports_them(nemo_ref, tmp_path):
    """NeMo's discriminators have the paper's sizes; a file holding their weights
    (old-style keys) imports into a model that can train."""
    config = nemo_config(nemo_ref / "hifigan_tiny.nemo")
    source = HifiGanModel(hifigan_config(config, has_discriminators=True)).eval()
    state = {}
    for key, value in source.state_dict().items():  # to NeMo's old key names
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        key = key.replace("parametrizations.weight.original", "weight_orig")
        key = key.replace("parametrizations.weight.0._u", "weight_u")
        state[key.replace("parametrizations.weight.0._v", "weight_v")] = value
    write_nemo(tmp_path / "full.nemo", config, state)
    imported = import_nemo(tmp_path / "full.nemo")
    assert imported.mpd is not None and imported.num_parameters() == 72410 + 70_724_591
    wave = 0.1 * torch.randn(1, 1, 3000)
    with torch.no_grad():
        ours, theirs = imported.msd(wave)[0], source.msd(wave)[0]
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(
    "section, key, value, match",
    [
        ("model", "input_as_mel_typo", True, "input_as_mel_typo"),
        ("generator", "upsample_rate", [8], "upsample_rate"),
        ("generator", "_target_", "my.UnivNetGenerator", "UnivNetGenerator"),
        ("preprocessor", "_target_", "my.Features", "my.Features"),
        ("preprocessor", "nfilters", 80, "nfilters"),
        ("preprocessor", "highfreq", 7000, "saved preprocessor fb"),
    ],
)
def test_unsupported_options_are_refused_by_name(
    nemo_ref, tmp_path, section, key, value, match
):
    from minispeech.core.checkpoint import read_checkpoint

    ckpt = read_checkpoint(nemo_ref / "hifigan_tiny.nemo")
    config = copy.deepcopy(ckpt.config)
    (config if section == "model" else config[section])[key] = value
    write_nemo(tmp_path / "bad.nemo", config, ckpt.state_dict)
    with pytest.raises(NemoImportError, match=match):
        import_nemo(tmp_path / "bad.nemo")
