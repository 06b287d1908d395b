"""import_nemo on NeMo's mask-based enhancement model: masking_tiny saved by the real
NeMo toolkit (shared/nemo_reference/masking_tiny*, README_tasks.md "Enhancement":
STFT 512/256, 2-layer BLSTM with 32 features, SI-SDR loss), and GRU and one-directional
estimators built here in the same key layout and `.nemo` file layout.

NeMo's arrays per case (`single_0`: one 12800-sample wave; `batch_01`: 12800 and
8800 samples, zero-padded): `encoded_real/imag` (AudioToSpectrogram), `mask`
(MaskEstimatorRNN on those), `processed_real/imag` (MaskReferenceChannel), `output`
(model.forward), `loss` (SDRLoss against the clean waves). Each stage is checked on
NeMo's own input to that stage and end to end from the waveform.
"""

import copy

import numpy as np
import pytest
import torch
from test_nemo_speaker import write_nemo

from minispeech.enhancement.model import EnhancementModel
from minispeech.nemo import NemoImportError, import_nemo
from minispeech.nemo.enhancement import enhancement_config

CASES = ("single_0", "batch_01")
ATOL = 1e-4  # the brief's bound; measured: STFT 7.6e-6, mask 4.2e-7, wave 1.8e-7


@pytest.fixture
def masking(nemo_ref):
    """The imported model and NeMo's arrays."""
    model = import_nemo(nemo_ref / "masking_tiny.nemo")
    return model, np.load(nemo_ref / "masking_tiny_io.npz")


def t(array):
    return torch.from_numpy(np.asarray(array))


def spec(ref, case, name):
    """NeMo's complex spectrogram (B, C, F, T) from its real and imaginary parts."""
    return torch.complex(t(ref[f"{case}/{name}_real"]), t(ref[f"{case}/{name}_imag"]))


def max_error(ours, theirs):
    return float(np.abs(ours.detach().numpy() - np.asarray(theirs)).max())


def test_imports_as_an_enhancement_model(nemo_ref, masking):
    model, _ = masking
    layout = [
        line.split("\t")[0] for line in open(nemo_ref / "masking_tiny_state_dict.txt")
    ]
    assert isinstance(model, EnhancementModel) and not model.training
    assert list(model.state_dict()) == layout  # NeMo's names, in NeMo's order
    assert model.num_parameters() == 60865  # masking_tiny_io.json n_params
    assert model.loss_args["scale_invariant"] is True
    assert (model.encoder.fft_length, model.encoder.hop_length) == (512, 256)


@pytest.mark.parametrize("case", CASES)
def test_every_stage_matches_nemo_on_nemo_inputs(masking, case):
    model, ref = masking
    noisy, lens = t(ref[f"{case}/noisy"]), t(ref[f"{case}/input_length"])
    encoded, encoded_lens = spec(ref, case, "encoded"), t(ref[f"{case}/encoded_length"])
    with torch.no_grad():
        ours, ours_lens = model.encoder(noisy, lens)
        mask, _ = model.mask_estimator(encoded, encoded_lens)
        processed = model.mask_processor(encoded, t(ref[f"{case}/mask"]))
    assert ours_lens.tolist() == encoded_lens.tolist()
    assert (ours - encoded).abs().max() <= ATOL
    assert max_error(mask, ref[f"{case}/mask"]) <= ATOL
    assert (processed - spec(ref, case, "processed")).abs().max() <= ATOL


@pytest.mark.parametrize("case", CASES)
def test_end_to_end_matches_nemo(masking, case):
    model, ref = masking
    noisy, lens = t(ref[f"{case}/noisy"]), t(ref[f"{case}/input_length"])
    clean = t(ref[f"{case}/clean"])
    with torch.no_grad():
        output, output_lens = model(noisy, lens)
        loss = model.loss(output, clean, lens)
        nemo_loss = model.loss(t(ref[f"{case}/output"]), clean, lens)
    assert output.shape == ref[f"{case}/output"].shape  # padded to the input length
    assert output_lens.tolist() == ref[f"{case}/output_length"].tolist()  # 8800 -> 8704
    assert max_error(output, ref[f"{case}/output"]) <= ATOL
    expected = float(ref[f"{case}/loss"])
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(nemo_loss) == pytest.approx(expected, rel=1e-5)


def test_enhance_equals_the_batch_forward(masking):
    model, ref = masking
    wave = t(ref["batch_01/noisy"])[1, 0, :8800]  # (S,) the shorter utterance
    enhanced = model.enhance(wave)
    assert enhanced.shape == (8800,)
    torch.testing.assert_close(enhanced, t(ref["batch_01/output"])[1, 0, :8800])


# ---------------------------------------------------------------- built here

NEMO = "nemo.collections.audio"


def nemo_config(**estimator):
    """A NeMo masking.yaml model section, small."""
    return {
        "target": f"{NEMO}.models.enhancement.EncMaskDecAudioToAudioModel",
        "sample_rate": 16000,
        "skip_nan_grad": False,
        "num_outputs": 1,
        "encoder": {
            "_target_": f"{NEMO}.modules.transforms.AudioToSpectrogram",
            "fft_length": 128,
            "hop_length": 32,
        },
        "decoder": {
            "_target_": f"{NEMO}.modules.transforms.SpectrogramToAudio",
            "fft_length": 128,
            "hop_length": 32,
        },
        "mask_estimator": {
            "_target_": f"{NEMO}.modules.masking.MaskEstimatorRNN",
            "num_outputs": 1,
            "num_subbands": 65,
            "num_features": 12,
            "num_layers": 2,
            **estimator,
        },
        "mask_processor": {
            "_target_": f"{NEMO}.modules.masking.MaskReferenceChannel",
            "ref_channel": 0,
        },
        "loss": {"_target_": f"{NEMO}.losses.SDRLoss", "scale_invariant": True},
    }


@pytest.mark.parametrize(
    "estimator",
    [
        {"rnn_type": "gru", "bidirectional": True},
        {"rnn_type": "gru", "bidirectional": False},
        {"rnn_type": "lstm", "bidirectional": False},
        {"rnn_type": "lstm", "bidirectional": True, "num_hidden_features": 12},
    ],
    ids=["bigru", "gru", "lstm", "blstm"],
)
def test_rnn_estimators_in_nemo_layout_import(tmp_path, estimator):
    config = nemo_config(**estimator)
    source = EnhancementModel(enhancement_config(config)).eval()
    for p in source.parameters():  # away from the init, biases included
        p.data.normal_(0, 0.3)
    write_nemo(tmp_path / "enh.nemo", config, source.state_dict())
    imported = import_nemo(tmp_path / "enh.nemo")
    suffix = "_reverse" if estimator["bidirectional"] else ""
    assert f"mask_estimator.rnn.weight_hh_l1{suffix}" in imported.state_dict()
    rnn = imported.mask_estimator.rnn
    assert isinstance(
        rnn, torch.nn.GRU if estimator["rnn_type"] == "gru" else torch.nn.LSTM
    )
    noisy = 0.1 * torch.randn(2, 3000)
    lens = torch.tensor([3000, 2100])
    with torch.no_grad():
        torch.testing.assert_close(imported(noisy, lens), source(noisy, lens))


def test_nemo_loss_defaults_are_stated(tmp_path):
    """NeMo's SDRLoss is plain SDR unless told otherwise; minispeech's is SI-SDR."""
    config = nemo_config()
    config["loss"] = {"_target_": f"{NEMO}.losses.SDRLoss"}
    loss = enhancement_config(config)["loss"]
    assert loss == {"scale_invariant": False, "remove_mean": True, "sdr_max": None}


def bad_config(section, key, value):
    config = copy.deepcopy(nemo_config())
    (config if section == "model" else config[section])[key] = value
    return config


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("mask_estimator", "use_ipd", True),
        ("mask_estimator", "num_hidden_features", 24),
        ("mask_estimator", "mag_reduction", None),
        ("mask_estimator", "not_a_nemo_key", 1),
        ("encoder", "_target_", f"{NEMO}.modules.transforms.AudioToSpectrogramTA"),
        ("mask_processor", "_target_", f"{NEMO}.modules.masking.MaskBasedBeamformer"),
        ("loss", "convolution_invariant", True),
        ("loss", "_target_", f"{NEMO}.losses.MSELoss"),
        ("model", "mixture_consistency", {"_target_": "MixtureConsistencyProjection"}),
        ("model", "channel_augment", {"_target_": "SelectChannels"}),
    ],
)
def test_unsupported_options_are_refused_by_name(tmp_path, section, key, value):
    write_nemo(tmp_path / "bad.nemo", bad_config(section, key, value), {})
    name = value.rsplit(".", 1)[-1] if key == "_target_" else key
    with pytest.raises(NemoImportError, match=name) as error:
        import_nemo(tmp_path / "bad.nemo")
    assert "bad.nemo" in str(error.value)
