"""import_nemo on three models saved by the real NeMo toolkit (shared/nemo_reference).

NeMo's outputs come from nemo_toolkit 3.0.0 on fixed waveforms (see make_refs.py there):
`*/processed_signal` is NeMo's preprocessor output and `*/encoded` its encoder output on
those features. The encoder is checked twice: on NeMo's own features (so a preprocessor
difference cannot hide an encoder error) and end to end from the waveform.
"""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import yaml

from minispeech.nemo import import_nemo
from minispeech.nemo.asr import map_encoder_state_dict
from minispeech.nemo.config import encoder_from_nemo_config, nemo_encoder_kwargs
from minispeech.nn import ConformerEncoder

MODELS = ("conformer_ctc_tiny", "fastconformer_ctc_tiny", "fastconformer_rnnt_tiny")
CASES = ("single_a", "single_b", "batch_acb")
ATOL = 1e-4  # float32
# NeMo's float32 log-mel differs from the same formula in float64 by up to 1.2e-4 on
# these waves (low-energy mel bins, where log(x + 2^-24) amplifies FFT rounding): a
# from-scratch float32 preprocessor cannot promise 1e-4 on every bin. The encoder
# tests hold 1e-4.
PREPROCESSOR_ATOL = 2.5e-4


def max_valid_error(ours, theirs, lens):
    """Max |ours - theirs| over each item's valid frames: (B, C, T) arrays."""
    return max(
        np.abs(ours[b, :, :n] - theirs[b, :, :n]).max() for b, n in enumerate(lens)
    )


def load(nemo_ref, name):
    model = import_nemo(nemo_ref / f"{name}.nemo")
    return model, np.load(nemo_ref / f"{name}_io.npz")


@pytest.mark.parametrize("name", MODELS)
def test_encoder_matches_nemo_on_nemo_features(nemo_ref, name):
    model, ref = load(nemo_ref, name)
    for case in CASES:
        feats = torch.from_numpy(ref[f"{case}/processed_signal"])
        lens = torch.from_numpy(ref[f"{case}/processed_length"])
        with torch.no_grad():
            enc, enc_lens = model.encoder(feats, lens)
        assert enc_lens.tolist() == ref[f"{case}/encoded_length"].tolist()
        error = max_valid_error(enc.numpy(), ref[f"{case}/encoded"], enc_lens)
        assert error <= ATOL, (name, case, error)


@pytest.mark.parametrize("name", MODELS)
def test_preprocessor_and_end_to_end_match_nemo(nemo_ref, name):
    model, ref = load(nemo_ref, name)
    for case in CASES:
        audio = torch.from_numpy(ref[f"{case}/input_signal"])
        audio_lens = torch.from_numpy(ref[f"{case}/input_length"])
        with torch.no_grad():
            feats, feat_lens = model.preprocessor(audio, audio_lens)
            enc, enc_lens = model.encode(audio, audio_lens)
        assert feat_lens.tolist() == ref[f"{case}/processed_length"].tolist()
        error = np.abs(feats.numpy() - ref[f"{case}/processed_signal"]).max()
        assert error <= PREPROCESSOR_ATOL, (name, case, "preprocessor", error)
        error = max_valid_error(enc.numpy(), ref[f"{case}/encoded"], enc_lens)
        assert error <= ATOL, (name, case, "end to end", error)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_equals_nemo(nemo_ref, name):
    model, _ = load(nemo_ref, name)
    meta = json.loads((nemo_ref / f"{name}_io.json").read_text())
    assert model.num_parameters() == meta["n_params"]  # NeMo counts parameters only


def write_nemo(path, config, state_dict):
    """A `.nemo`-layout tar (NeMo writes `./`-prefixed members)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("./model_config.yaml", yaml.safe_dump(config).encode()),
            ("./model_weights.ckpt", buffer.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def nemo_config_of(nemo_ref, name="fastconformer_ctc_tiny"):
    return json.loads((nemo_ref / f"{name}_io.json").read_text())["model_config"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("self_attention_model", "rel_pos_local_attn"),
        ("subsampling", "vggnet"),
        ("causal_downsampling", True),
        ("reduction", "pooling"),
        ("conv_norm_type", "group_norm4"),
        ("not_a_nemo_key", 1),
    ],
)
def test_unsupported_architectures_are_refused_by_name(nemo_ref, tmp_path, key, value):
    config = nemo_config_of(nemo_ref)
    config["encoder"][key] = value
    path = tmp_path / "bad.nemo"
    write_nemo(path, config, {})
    with pytest.raises(ValueError, match=key) as error:
        import_nemo(path)
    assert "bad.nemo" in str(error.value)


def test_refuses_other_encoder_classes(nemo_ref, tmp_path):
    config = nemo_config_of(nemo_ref)
    config["encoder"]["_target_"] = "nemo.collections.asr.modules.ConvASREncoder"
    write_nemo(tmp_path / "m.nemo", config, {})
    with pytest.raises(ValueError, match="ConvASREncoder"):
        import_nemo(tmp_path / "m.nemo")


def test_omitted_keys_take_nemo_defaults():
    encoder = encoder_from_nemo_config({"feat_in": 80, "n_layers": 1, "d_model": 64})
    conv = encoder.layers[0].conv
    assert conv.depthwise_conv.kernel_size == (31,)  # NeMo's conv_kernel_size default
    assert encoder.layers[0].feed_forward1.linear1.out_features == 256  # x4
    assert encoder.pre_encode.conv[0].out_channels == 64  # channels -1 -> d_model
    assert encoder.att_context_size == (-1, -1)
    multi = nemo_encoder_kwargs(
        {
            "feat_in": 80,
            "n_layers": 1,
            "d_model": 64,
            "att_context_size": [[70, 1], [70, 0]],
        }
    )
    assert multi["att_context_size"] == [70, 1]  # NeMo's inference choice: the first


def test_mapping_is_general(tmp_path):
    """Another depth, width, heads, kernel, subsampling, context, norm and tied biases:
    a NeMo-style file round-trips to the same outputs."""
    encoder_cfg = dict(
        _target_="nemo.collections.asr.modules.ConformerEncoder",
        feat_in=40,
        n_layers=3,
        d_model=48,
        n_heads=3,
        ff_expansion_factor=2,
        subsampling="dw_striding",
        subsampling_factor=4,
        subsampling_conv_channels=12,
        conv_kernel_size=7,
        conv_norm_type="layer_norm",
        att_context_size=[6, 2],
        untie_biases=False,
        xscaling=False,
        use_pytorch_sdpa_backends=[],
    )
    original = ConformerEncoder(**nemo_encoder_kwargs(encoder_cfg)).eval()
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {f"encoder.{k}": v for k, v in original.state_dict().items()}
    state["decoder.decoder_layers.0.weight"] = torch.randn(5, 48, 1)  # 4 labels + blank
    state["decoder.decoder_layers.0.bias"] = torch.randn(5)
    preprocessor = {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "features": 40,
        "n_fft": 512,
    }
    config = {
        "preprocessor": preprocessor,
        "encoder": encoder_cfg,
        "labels": list("abcd"),
        "target": "nemo.collections.asr.models.ctc_models.EncDecCTCModel",
    }
    write_nemo(tmp_path / "general.nemo", config, state)
    model = import_nemo(tmp_path / "general.nemo")
    assert set(map_encoder_state_dict(state)) == set(original.state_dict())
    feats, lens = torch.randn(2, 40, 50), torch.tensor([50, 33])
    with torch.no_grad():
        want, _ = original(feats, lens)
        got, _ = model.encoder(feats, lens)
    assert torch.equal(got, want)
    head = state["decoder.decoder_layers.0.weight"][:, :, 0]  # (V, D, 1) -> (V, D)
    assert torch.equal(model.head.weight, head)
