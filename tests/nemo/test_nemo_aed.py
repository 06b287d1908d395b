"""import_nemo on NeMo's multitask AED (Canary-style EncDecMultiTaskModel):
canary_aed_tiny saved by the real NeMo toolkit (shared/nemo_reference/canary_aed_tiny*,
README_tasks.md "Multitask AED"): 80 mels, a 2-layer FastConformer (dw_striding x8,
d 64), a 2-layer pre-LN Transformer decoder (d 64, 4 heads) with a tied head over 78
tokens padded to 80, the aggregate tokenizer (14 special tokens + a 64-piece English
BPE at offset 14), canary prompt <|startoftranscript|><|en|><|transcribe|><|en|>
<|nopnc|>.

NeMo's arrays: two waves (22400 samples, zero-padded; 16000 and 22400 valid), the
preprocessor and encoder outputs, the projected encoder states, the teacher-forced
decoder log-probs of prompt + targets (padded with <pad> = 2), and the greedy ids after
the prompt (beam_size 1, max_generation_delta 8), which never reach EOS and so show
the length cap: 22 tokens each.
"""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import yaml

from minispeech.asr.aed_model import AEDModel
from minispeech.nemo import NemoImportError, import_nemo

ATOL = 1e-4  # the brief's bound; measured: mels 4.5e-5, encoder 0 (NeMo's mels as
# input), encoder states end to end 1.1e-5, teacher-forced log-probs 3.8e-6


@pytest.fixture
def canary(nemo_ref):
    model = import_nemo(nemo_ref / "canary_aed_tiny.nemo")
    info = json.loads((nemo_ref / "canary_aed_tiny_io.json").read_text())
    return model, np.load(nemo_ref / "canary_aed_tiny_io.npz"), info


def t(array):
    return torch.from_numpy(np.asarray(array))


def max_error(ours, theirs):
    return float((ours.detach() - t(theirs)).abs().max())


def test_imports_as_an_aed_model(canary):
    model, _, info = canary
    assert isinstance(model, AEDModel) and not model.training
    assert model.num_parameters() == info["n_params"]  # the tied matrix counts once
    assert model.decoder.output.weight is model.decoder.embedding.weight
    assert model.num_classes == 80 and model.tokenizer.vocab_size == 78


def test_tokenizer_ids_equal_nemo(canary):
    model, ref, info = canary
    tok = model.tokenizer
    assert tok.tokens == info["tokenizer"]["vocab"]
    assert tok.offsets == info["tokenizer"]["token_id_offset"]
    expected = (info["tokenizer"][k] for k in ("eos_id", "bos_id", "pad_id"))
    assert (tok.eos_id, tok.bos_id, tok.pad_id) == tuple(expected)
    assert tok.prompt_ids(pnc=False) == ref["prompt_ids"].tolist()
    for text, ids in zip(info["targets_text"], info["targets_ids"]):
        assert tok.text_to_ids(text, "en") == ids


def test_front_end_and_encoder_match_nemo(canary):
    model, ref, _ = canary
    with torch.no_grad():
        feats, feat_lens = model.preprocessor(
            t(ref["input_signal"]), t(ref["input_length"])
        )
        enc, enc_lens = model.encoder(
            t(ref["processed_signal"]), t(ref["processed_length"])
        )
        memory, memory_lens = model.encode(
            t(ref["input_signal"]), t(ref["input_length"])
        )
    assert feat_lens.tolist() == ref["processed_length"].tolist() == [100, 140]
    assert max_error(feats, ref["processed_signal"]) < ATOL
    assert enc_lens.tolist() == ref["encoded_length"].tolist() == [13, 18]
    assert max_error(enc, ref["encoded"]) < ATOL
    assert max_error(memory, ref["enc_states"]) < ATOL  # identity projection (64 = 64)
    assert memory_lens.tolist() == [13, 18]


def test_teacher_forced_log_probs_match_nemo(canary):
    model, ref, _ = canary
    args = (t(ref["transcript"]), t(ref["transcript_length"]))
    with torch.no_grad():
        log_probs = model(t(ref["input_signal"]), t(ref["input_length"]), *args)
        # from NeMo's encoder states, through the decoder alone
        alone, _ = model.log_probs(
            args[0], t(ref["enc_states"]), t(ref["encoded_length"]), None, args[1]
        )
    assert log_probs.shape == (2, 20, 80)
    assert max_error(log_probs, ref["tf_log_probs"]) < ATOL  # padded positions too
    assert max_error(alone, ref["tf_log_probs"]) < ATOL


def test_greedy_ids_match_nemo_up_to_the_length_cap(canary):
    pytest.importorskip("minispeech.asr.aed_decoding")
    model, ref, info = canary
    prompt = ref["prompt_ids"].tolist()
    # T'_padded 18 + delta 8 = 26 decoder positions: the 5-token prompt and 21 of the
    # 22 emitted tokens (the last one is never read back)
    assert model.max_generation_length(t(ref["encoded_length"]), len(prompt)) == 22
    with torch.no_grad():
        ids = model.generate(t(ref["enc_states"]), t(ref["encoded_length"]), prompt)
    assert ids == [ref["greedy_ids_0"].tolist(), ref["greedy_ids_1"].tolist()]
    assert [model.tokenizer.ids_to_text(x) for x in ids] == info["greedy_text"]
    waves = [ref["input_signal"][b, : ref["input_length"][b]] for b in range(2)]
    assert model.transcribe(waves, pnc=False) == info["greedy_text"]


def test_saved_as_a_minispeech_model_it_keeps_its_outputs(canary, tmp_path):
    model, ref, _ = canary
    again = AEDModel.restore_from(model.save_to(tmp_path / "canary.nemo")).eval()
    assert again.tokenizer.tokens == model.tokenizer.tokens
    args = [t(ref[k]) for k in ("input_signal", "input_length", "transcript")]
    args.append(t(ref["transcript_length"]))
    with torch.no_grad():
        assert torch.equal(again(*args), model(*args))


def rewrite_config(source, target, change) -> None:
    """Copy a .nemo tar, passing its model_config.yaml through `change(cfg)`."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("model_config.yaml"):
                cfg = yaml.safe_load(data)
                change(cfg)
                data = yaml.safe_dump(cfg, sort_keys=False).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)


def special_tokens_last(cfg):
    langs = cfg["tokenizer"]["langs"]
    langs["spl_tokens"] = langs.pop("spl_tokens")  # offsets would start with en


def decoder_option(**values):
    return lambda cfg: cfg["transf_decoder"]["config_dict"].update(values)


@pytest.mark.parametrize(
    "name, change",
    [
        ("prompt_format", lambda c: c.update(prompt_format="canary2")),
        ("transf_encoder", lambda c: c["transf_encoder"].update(num_layers=1)),
        ("hidden_act", decoder_option(hidden_act="gelu")),
        ("pre_ln", decoder_option(pre_ln=False)),
        ("learn_positional_encodings", decoder_option(learn_positional_encodings=True)),
        ("num_classes", lambda c: c["head"].update(num_classes=96)),
        ("spl_tokens", special_tokens_last),
    ],
)
def test_unsupported_options_are_refused_by_name(nemo_ref, tmp_path, name, change):
    path = tmp_path / "changed.nemo"
    rewrite_config(nemo_ref / "canary_aed_tiny.nemo", path, change)
    with pytest.raises(NemoImportError, match=name):
        import_nemo(path)
