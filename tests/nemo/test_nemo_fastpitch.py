"""import_nemo on NeMo's FastPitch: fastpitch_tiny saved by the real NeMo toolkit
(shared/nemo_reference/fastpitch_tiny*, README_tasks.md "FastPitch and the aligner":
d_model 64, 2+2 FFT layers, learned aligner, EnglishCharsTokenizer, 22.05 kHz).

NeMo's arrays per case (`single_0`: "hello world."; `batch_01`: it and "it's a tiny
test, ok?", padded with the pad id 43), made by make_refs_tasks.py `tts_run`:
`encoder_out`; `gen/*` (forward with predicted durations and pitch) and
`gen_pace1.25/*`; `given/*` (given integer durations and token pitch); `tf/*` (the
teacher-forced forward on mels of `tf/audio` with the exact beta-binomial prior and
frame pitch, and NeMo's five losses); `aligner/*` (the AlignmentEncoder alone, no
prior). Every array is compared at 1e-4 (the brief's bound), integers exactly.
"""

import copy
import json

import numpy as np
import pytest
import torch
from test_nemo_speaker import write_nemo

from minispeech.nemo import NemoImportError, import_nemo
from minispeech.tts.fastpitch_model import FastPitchModel

CASES = ("single_0", "batch_01")
ATOL = 1e-4  # measured: largest 4.6e-5 (durations up to 75 frames), 1.3e-5 (mels)


@pytest.fixture
def fastpitch(nemo_ref):
    """The imported model and NeMo's arrays (skips without the reference folder)."""
    model = import_nemo(nemo_ref / "fastpitch_tiny.nemo")
    return model, np.load(nemo_ref / "fastpitch_tiny_io.npz")


def t(array):
    return torch.from_numpy(np.asarray(array))


def check(ours, ref, key):
    theirs = np.asarray(ref[key])
    ours = ours.detach().numpy()
    assert ours.shape == theirs.shape, (key, ours.shape, theirs.shape)
    if np.issubdtype(theirs.dtype, np.integer):
        assert np.array_equal(ours, theirs), key
    else:
        assert float(np.abs(ours - theirs).max()) <= ATOL, key


def test_imports_as_fastpitch(nemo_ref, fastpitch):
    model, _ = fastpitch
    assert isinstance(model, FastPitchModel) and not model.training
    assert model.num_parameters() == 382882  # fastpitch_tiny_io.json n_params
    nemo_keys = [
        line.split("\t")[0] for line in open(nemo_ref / "fastpitch_tiny_state_dict.txt")
    ]
    # NeMo's names for everything loaded: not the aligner's twin, the derived
    # window, filterbank and inv_freq, nor the zero pitch statistics
    dropped = (
        "aligner.",
        "preprocessor.",
        "fastpitch.pitch_mean",
        "fastpitch.pitch_std",
    )
    kept = [k for k in nemo_keys if not k.startswith(dropped) and "inv_freq" not in k]
    assert sorted(model.state_dict()) == sorted(kept + ["n_train_steps"])
    assert model.sample_rate == 22050 and model.tokenizer.pad == 43


@pytest.mark.parametrize("case", CASES)
def test_inference_paths_match_nemo(fastpitch, case):
    model, ref = fastpitch
    tokens, lens = t(ref[f"{case}/tokens"]), t(ref[f"{case}/token_lengths"])
    fp = model.fastpitch
    with torch.no_grad():
        check(fp.encoder(tokens, lens)[0], ref, f"{case}/encoder_out")
        gen = model.generate(tokens)
        for name in ("log_durs_predicted", "durs_predicted", "pitch_predicted"):
            check(getattr(gen, name), ref, f"{case}/gen/{name}")
        check(gen.spect, ref, f"{case}/gen/spect")
        check(gen.dec_lens, ref, f"{case}/gen/dec_lens")
        fast = model.generate(tokens, pace=1.25)
        check(fast.spect, ref, f"{case}/gen_pace1.25/spect")
        check(fast.dec_lens, ref, f"{case}/gen_pace1.25/dec_lens")
        durs, pitch = t(ref[f"{case}/given/durs"]), t(ref[f"{case}/given/pitch_tokens"])
        given = fp(tokens, lens, durs=durs, pitch=pitch)
    check(given.spect, ref, f"{case}/given/spect")
    check(given.dec_lens, ref, f"{case}/given/dec_lens")
    check(given.pitch, ref, f"{case}/given/pitch_out")


@pytest.mark.parametrize("case", CASES)
def test_teacher_forced_path_and_losses_match_nemo(fastpitch, case):
    model, ref = fastpitch
    batch = {
        "audio": t(ref[f"{case}/tf/audio"]),
        "audio_lens": t(ref[f"{case}/tf/audio_lens"]),
        "text": t(ref[f"{case}/tokens"]),
        "text_lens": t(ref[f"{case}/token_lengths"]),
        "pitch": t(ref[f"{case}/tf/pitch_frames"]),
        "attn_prior": t(ref[f"{case}/tf/attn_prior"]),
    }
    with torch.no_grad():
        out, mels, mel_lens = model.forward_batch(batch)
        losses = model.losses(out, mels, mel_lens, batch["text_lens"])
    check(mels, ref, f"{case}/tf/mels")
    check(mel_lens, ref, f"{case}/tf/mel_lens")
    for name in ("attn_soft", "attn_logprob", "attn_hard", "attn_hard_dur"):
        check(getattr(out, name), ref, f"{case}/tf/{name}")
    check(out.pitch, ref, f"{case}/tf/pitch_avg")
    for name in ("log_durs_predicted", "pitch_predicted", "spect", "dec_lens"):
        check(getattr(out, name), ref, f"{case}/tf/{name}")
    scales = {"dur_loss": 0.1, "pitch_loss": 0.1}  # NeMo's values include the scale
    for name in ("mel_loss", "dur_loss", "pitch_loss", "forward_sum_loss", "bin_loss"):
        ours = scales.get(name, 1.0) * losses[name]
        assert float(ours) == pytest.approx(float(ref[f"{case}/tf/{name}"]), abs=ATOL)


@pytest.mark.parametrize("case", CASES)
def test_aligner_alone_matches_nemo(fastpitch, case):
    model, ref = fastpitch
    tokens = t(ref[f"{case}/tokens"])
    aligner = model.fastpitch.aligner
    with torch.no_grad():
        text_emb = model.fastpitch.encoder.word_emb(tokens)  # (B, U, D)
        soft, logprob = aligner(t(ref[f"{case}/tf/mels"]), text_emb, tokens != 43)
    check(text_emb, ref, f"{case}/aligner/text_emb")
    check(soft, ref, f"{case}/aligner/attn_soft_noprior")
    check(logprob, ref, f"{case}/aligner/attn_logprob_noprior")


def test_parse_gives_nemo_tokens(nemo_ref, fastpitch):
    model, ref = fastpitch
    assert model.parse("hello world.").tolist() == ref["single_0/tokens"].tolist()


# ---------------------------------------------------------------- refusals


@pytest.fixture
def nemo_cfg(nemo_ref):
    """NeMo's full model config of fastpitch_tiny (the JSON's `model_config`)."""
    return json.loads((nemo_ref / "fastpitch_tiny_io.json").read_text())["model_config"]


@pytest.mark.parametrize(
    "section, key, value, named",
    [
        ("model", "learn_alignment", False, "learn_alignment"),
        ("model", "n_speakers", 4, "n_speakers"),
        ("model", "energy_embedding_kernel_size", 3, "energy_embedding_kernel_size"),
        ("model", "speaker_encoder", {"_target_": "SpeakerEncoder"}, "speaker_encoder"),
        ("text_tokenizer", "_target_", "tts_tokenizers.IPATokenizer", "IPATokenizer"),
        ("text_tokenizer", "add_blank_at", "last", "add_blank_at"),
        ("input_fft", "pre_lnorm", True, "pre_lnorm"),
        ("input_fft", "d_embed", 32, "d_embed"),
        ("output_fft", "condition_types", ["add"], "condition_types"),
        ("pitch_predictor", "_target_", "x.ConvPredictor", "ConvPredictor"),
        ("alignment_module", "n_mel_channels", 64, "n_mel_channels"),
    ],
)
def test_unsupported_options_are_refused_by_name(
    tmp_path, nemo_cfg, section, key, value, named
):
    config = copy.deepcopy(nemo_cfg)
    (config if section == "model" else config[section])[key] = value
    write_nemo(tmp_path / "bad.nemo", config, {})
    with pytest.raises(NemoImportError, match=named):
        import_nemo(tmp_path / "bad.nemo")


def test_aligner_twins_must_agree(nemo_ref, tmp_path, nemo_cfg):
    """NeMo stores one aligner under two names; copies that differ are refused."""
    model = import_nemo(nemo_ref / "fastpitch_tiny.nemo")
    state = {k: v for k, v in model.state_dict().items() if k != "n_train_steps"}
    for key in [k for k in state if k.startswith("fastpitch.aligner.")]:
        state[key.removeprefix("fastpitch.")] = state[key].clone()
    state["aligner.key_proj.0.conv.bias"] += 1.0
    write_nemo(tmp_path / "twins.nemo", nemo_cfg, state)
    with pytest.raises(NemoImportError, match="aligner.key_proj.0.conv.bias"):
        import_nemo(tmp_path / "twins.nemo")
