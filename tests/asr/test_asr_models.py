"""CTCModel and TransducerModel: shapes, a tiny overfit, batched == single,
save/restore."""

import copy
import math

import pytest
import torch

from minispeech.asr import CTCModel, TransducerModel
from minispeech.core.config import ConfigError
from minispeech.core.model import restore_from

LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
ENCODER = {
    "_target_": "minispeech.nn.ConformerEncoder",
    "feat_in": 32,
    "n_layers": 1,
    "d_model": 32,
    "n_heads": 2,
    "conv_kernel_size": 7,
    "subsampling": "striding",
    "subsampling_factor": 4,
    "subsampling_conv_channels": 16,
    "dropout": 0.0,
    "dropout_att": 0.0,
    "dropout_emb": 0.0,
    "dropout_pre_encoder": 0.0,
}
BASE = {
    "labels": LABELS,
    "preprocessor": {"features": 32, "dither": 0.0},
    "encoder": ENCODER,
    "optim": {"name": "adam", "lr": 3e-3},
}
CTC_CFG = {"_target_": "minispeech.asr.CTCModel", **BASE}
RNNT_CFG = {
    "_target_": "minispeech.asr.TransducerModel",
    **BASE,
    "decoder": {"pred_hidden": 32},
    "joint": {"joint_hidden": 32},
}
TDT_CFG = {
    **RNNT_CFG,
    "loss": {"name": "tdt", "durations": [0, 1, 2], "reduction": "mean"},
}


def make_batch(texts, seconds=(1.0, 0.7)):
    """Random 'audio' of the given lengths with tokenized texts, as collate returns."""
    lens = torch.tensor([int(s * 16000) for s in seconds])
    audio = torch.randn(len(lens), int(lens.max())) * 0.1
    for b, n in enumerate(lens):
        audio[b, n:] = 0
    ids = [[LABELS.index(c) for c in t] for t in texts]
    tokens = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
    for b, row in enumerate(ids):
        tokens[b, : len(row)] = torch.tensor(row)
    return {
        "audio": audio,
        "audio_lens": lens,
        "tokens": tokens,
        "token_lens": torch.tensor([len(r) for r in ids]),
        "ids": ["a", "b"],
        "texts": list(texts),
    }


@pytest.mark.parametrize(
    "cfg", [CTC_CFG, RNNT_CFG, TDT_CFG], ids=["ctc", "rnnt", "tdt"]
)
def test_overfit_one_batch_halves_the_loss(cfg):
    model = copy.deepcopy(cfg)
    model = {"ctc": CTCModel, "rnnt": TransducerModel}[
        "ctc" if "CTC" in cfg["_target_"] else "rnnt"
    ](model)
    batch = make_batch(["go left", "stop"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = float(model.training_step(batch)["loss"].detach())
    for _ in range(40):
        opt.zero_grad()
        loss = model.training_step(batch)["loss"]
        loss.backward()
        opt.step()
    assert loss.item() < first / 2, (first, loss.item())


def test_ctc_forward_shapes_and_blank_last():
    model = CTCModel(CTC_CFG).eval()
    batch = make_batch(["go", "no"])
    log_probs, enc_lens = model(batch["audio"], batch["audio_lens"])
    assert log_probs.shape[2] == len(LABELS) + 1 and model.blank == len(LABELS)
    # 1.0 s, 0.7 s -> 100, 70 frames; each stride-2 stage: n -> (n - 1) // 2 + 1
    assert enc_lens.tolist() == [25, 18]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize(
    "cfg", [CTC_CFG, RNNT_CFG, TDT_CFG], ids=["ctc", "rnnt", "tdt"]
)
def test_transcribe_batched_equals_single(cfg):
    cls = CTCModel if "CTC" in cfg["_target_"] else TransducerModel
    model = cls(cfg)
    waves = [torch.randn(n) * 0.1 for n in (16000, 9000, 12345)]
    assert model.transcribe(waves, batch_size=3) == [
        model.transcribe([w])[0] for w in waves
    ]


def test_chunked_log_probs_equal_full_forward_with_local_context():
    """With a local receptive field (limited attention, no utterance normalization)
    every
    kept frame of a chunk saw all it can see, so stitched chunks equal one full pass."""
    encoder = {**ENCODER, "att_context_size": [4, 4]}  # +-4 frames, conv +-3 frames
    cfg = {
        **CTC_CFG,
        "encoder": encoder,
        "chunk": {"length": 1.6, "overlap": 0.8},
        "preprocessor": {"features": 32, "dither": 0.0, "normalize": None},
    }
    model = CTCModel(cfg).eval()
    wave = torch.randn(16000 * 4 + 1234) * 0.1
    lens = torch.tensor([wave.numel()])
    with torch.no_grad():
        full, full_lens = model(wave[None], lens)  # (1, T', V)
        chunked, chunked_lens = model.log_probs(wave[None], lens)
    n = int(full_lens[0])
    assert abs(int(chunked_lens[0]) - n) <= 1
    m = min(n, int(chunked_lens[0])) - 3  # the very last frames see the padded edge
    assert torch.allclose(chunked[0, :m], full[0, :m], atol=1e-4)


LOCAL = {  # a local receptive field: +-4 frames of attention, conv +-3 frames
    "encoder": {**ENCODER, "att_context_size": [4, 4]},
    "chunk": {"length": 1.6, "overlap": 0.8},
    "preprocessor": {"features": 32, "dither": 0.0, "normalize": None},
}


@pytest.mark.parametrize("cfg", [RNNT_CFG, TDT_CFG], ids=["rnnt", "tdt"])
def test_transducer_long_audio_goes_through_stitched_windows(cfg):
    """A transducer's long input is encoded in windows (encode_long) and decoded over
    all stitched frames: with a local receptive field the kept frames equal one full
    pass, and so does the transcript."""
    torch.manual_seed(0)
    model = TransducerModel({**cfg, **LOCAL}).eval()
    wave = torch.randn(16000 * 4) * 0.1  # 100 encoder frames, 4 windows of 40
    lens = torch.tensor([wave.numel()])
    with torch.no_grad():
        full, full_lens = model.encode(wave[None], lens)  # (1, D, T')
        stitched, stitched_lens = model.encode_long(wave[None], lens)
        assert stitched_lens.tolist() == full_lens.tolist()
        torch.testing.assert_close(stitched, full, rtol=0, atol=1e-4)
        one_pass = TransducerModel({**cfg, **LOCAL, "chunk": {"length": 10.0}})
        one_pass.load_state_dict(model.state_dict())
        windows = []
        encode_window = model.chunked_encode
        model.chunked_encode = lambda *args: (
            windows.append(args) or encode_window(*args)
        )
        text = model.decode(wave[None], lens)
        assert len(windows) == 1  # decode went through the windows (one utterance)
        assert text == one_pass.eval().decode(wave[None], lens)
        assert text[0]  # the random model emits something: the test compares labels


def test_chunk_section_is_checked_for_transducers():
    with pytest.raises(ConfigError, match="chunk"):
        TransducerModel({**RNNT_CFG, "chunk": {"length": 2.0, "hop": 1.0}})
    model = TransducerModel({**RNNT_CFG, "chunk": {"length": 1.0, "overlap": 1.0}})
    wave = torch.randn(1, 24000) * 0.1
    with pytest.raises(ConfigError, match="model.chunk: overlap 1.0 s"):
        model.eval().decode(wave, torch.tensor([24000]))


def test_save_restore_round_trip(tmp_path):
    model = TransducerModel(RNNT_CFG).eval()
    path = model.save_to(tmp_path / "m.nemo")
    again = restore_from(path).eval()
    wave = [torch.randn(8000) * 0.1]
    assert type(again) is TransducerModel
    assert again.transcribe(wave) == model.transcribe(wave)


@pytest.mark.parametrize(
    "cfg", [CTC_CFG, RNNT_CFG, TDT_CFG], ids=["ctc", "rnnt", "tdt"]
)
def test_lexicon_beam_spells_only_lexicon_words(cfg, tmp_path):
    torch.manual_seed(0)
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("abc\nba\ncab\n")
    decoding = {"strategy": "beam", "beam_size": 4, "lexicon": str(lexicon)}
    kind = CTCModel if cfg is CTC_CFG else TransducerModel
    model = kind({**cfg, "decoding": decoding}).eval()
    plain = kind({**cfg, "decoding": {"strategy": "beam"}}).eval()
    plain.load_state_dict(model.state_dict())
    waves = [torch.randn(n) * 0.1 for n in (16000, 12000, 4000)]
    texts = model.transcribe(waves)
    assert all(set(t.split()) <= {"abc", "ba", "cab"} for t in texts), texts
    assert not all(
        set(t.split()) <= {"abc", "ba", "cab"} for t in plain.transcribe(waves)
    )


def test_unknown_model_key_is_named():
    with pytest.raises(ConfigError, match="dropuot"):
        CTCModel({**CTC_CFG, "dropuot": 0.1})


@pytest.mark.parametrize(
    "section, typo, nearest",
    [
        ("preprocessor", {"featurs": 32}, "features"),
        ("spec_augment", {"freq_mask": 2}, "freq_masks"),
        ("freq_warp", {"min_facter": 0.9}, "min_factor"),
        ("encoder", {"n_layer": 1}, "n_layers"),
        ("decoder", {"pred_hiden": 32}, "pred_hidden"),
        ("joint", {"joint_hiden": 32}, "joint_hidden"),
        ("loss", {"fastemit_lamda": 0.1}, "fastemit_lambda"),
        ("decoding", {"beam_sise": 4}, "beam_size"),
        ("train_ds", {"batch_sise": 4}, "batch_size"),
        ("train_ds.augmentor", {"sped": [0.9, 1.1]}, "speed"),
        ("tokenizer", {"vocab_sise": 64}, "vocab_size"),
    ],
)
def test_a_misspelt_key_in_any_section_names_the_section_and_the_nearest(
    section, typo, nearest
):
    cfg = copy.deepcopy(RNNT_CFG)
    if section == "tokenizer":
        cfg.pop("labels")
        cfg["tokenizer"] = {"dir": "unused"}
    node = cfg
    for part in section.split("."):
        node = node.setdefault(part, {"manifest_filepath": "m.jsonl"})
    node.update(typo)
    with pytest.raises(ConfigError) as error:
        TransducerModel(cfg)
    message = str(error.value)
    assert message.startswith(f"model.{section}") and "\n" not in message
    assert f"{next(iter(typo))!r} (did you mean {nearest!r}" in message


def test_a_config_of_another_model_class_is_reported_by_section():
    """A CTC config given the transducer class: unknown and missing keys per
    section, not a TypeError from a constructor."""
    cfg = {
        **CTC_CFG,
        "_target_": "minispeech.asr.TransducerModel",
        "ctc_reduction": "mean_batch",
        "decoding": {"strategy": "beam", "lm_path": "lm.arpa"},
    }
    with pytest.raises(ConfigError) as error:
        TransducerModel(cfg)
    lines = str(error.value).splitlines()
    assert lines[0] == "the config does not fit TransducerModel:"
    assert lines[1].startswith("model (TransducerModel): unknown key 'ctc_reduction'")
    assert any(
        line.startswith(
            "model.joint (JointNetwork): missing required keys: joint_hidden"
        )
        for line in lines
    )
    assert any(
        line.startswith("model.decoding: unknown key 'lm_path'") for line in lines
    )


@pytest.mark.parametrize(
    "cfg, decoding, match",
    [
        (
            CTC_CFG,
            {"strategy": "bem"},
            "model.decoding.strategy 'bem': use greedy or beam",
        ),
        (CTC_CFG, {"beam_size": 0}, "model.decoding.beam_size: a positive integer"),
        (RNNT_CFG, {"max_symbols": "ten"}, "model.decoding.max_symbols"),
        (TDT_CFG, {"strategy": "sample"}, "strategy 'sample': use greedy or beam"),
    ],
)
def test_bad_decoding_values_are_named(cfg, decoding, match):
    cls = CTCModel if "CTC" in cfg["_target_"] else TransducerModel
    with pytest.raises(ConfigError, match=match):
        cls({**cfg, "decoding": decoding})


@pytest.mark.parametrize("cfg", [CTC_CFG, RNNT_CFG], ids=["ctc", "rnnt"])
def test_val_wer_and_val_cer_equal_the_metrics_on_the_same_hypotheses(cfg):
    """One CER: the model's counts spaces exactly as metrics.cer does."""
    from minispeech.metrics.wer import cer, wer

    cls = CTCModel if "CTC" in cfg["_target_"] else TransducerModel
    model = cls(cfg).eval()
    batch = make_batch(["go left now", "stop"])
    hyps = ["go  lef tnow", "st op"]  # extra, missing and moved spaces
    model.decode = lambda audio, audio_lens: list(hyps)
    with torch.no_grad():
        metrics = model.validation_metrics(model.validation_step(batch))
    assert metrics["val_wer"] == pytest.approx(wer(batch["texts"], hyps))
    assert metrics["val_cer"] == pytest.approx(cer(batch["texts"], hyps))
    assert metrics["val_cer"] == pytest.approx(4 / 15)  # 2 I + 1 D + 1 D, 15 chars


@pytest.mark.parametrize("cfg", [CTC_CFG, RNNT_CFG], ids=["ctc", "rnnt"])
def test_validation_loss_skips_utterances_too_long_for_a_trellis(cfg):
    """Utterances over max_loss_seconds are decoded and scored but left out of
    val_loss, which then equals the loss of the short ones alone."""
    cls = CTCModel if "CTC" in cfg["_target_"] else TransducerModel
    model = cls(cfg).eval()
    batch = make_batch(["go left now", "stop"], seconds=(1.0, 0.7))
    model.max_loss_seconds = 0.8  # the first utterance is "too long"
    with torch.no_grad():
        stats = model.validation_step(batch)
        n = int(batch["audio_lens"][1])
        only_short = {
            "audio": batch["audio"][1:, :n],
            "audio_lens": batch["audio_lens"][1:],
            "tokens": batch["tokens"][1:, : int(batch["token_lens"][1])],
            "token_lens": batch["token_lens"][1:],
        }
        short = model.training_step(only_short)["loss"]
    assert stats["loss_count"] == 1 and stats["count"] == 2 and stats["words"] == 4
    metrics = model.validation_metrics(stats)
    torch.testing.assert_close(torch.tensor(metrics["val_loss"]), short)
    model.max_loss_seconds = 0.5  # none is short: no loss, still WER
    with torch.no_grad():
        metrics = model.validation_metrics(model.validation_step(batch))
    assert math.isnan(metrics["val_loss"]) and metrics["val_wer"] >= 0


@pytest.mark.parametrize("cls, cfg", [(CTCModel, CTC_CFG), (TransducerModel, RNNT_CFG)])
def test_freeze_patterns_leave_the_rest_training(cls, cfg):
    model = cls({**cfg, "freeze": ["encoder.*"]})
    names = {n for n, _ in model.named_parameters()}
    encoder = {n for n in names if n.startswith("encoder.")}
    assert set(model.frozen) == encoder
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == names - encoder and trained
    assert cls(cfg).frozen == []  # nothing frozen by default
    with pytest.raises(ConfigError, match=r"model\.freeze: .*\['encodr\.\*'\]"):
        cls({**cfg, "freeze": ["encodr.*"]})
