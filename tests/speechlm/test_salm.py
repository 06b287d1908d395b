"""SALMModel and TextLMModel: the splice, the answer-only loss, freezing and LoRA,
batched answers, the silence ablation, the model file, and the errors a user meets.

Tiny pieces built in a temporary folder: a CTC model file (one Conformer layer), a
chat tokenizer and a TextLMModel trained for nothing on a QA manifest of random audio.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from minispeech.asr import CTCModel, TransducerModel
from minispeech.core.config import ConfigError
from minispeech.data.manifest import ManifestError
from minispeech.nn.attention import padding_mask, self_attention_mask
from minispeech.speechlm import SALMModel, TextLMModel, merge_lora
from minispeech.speechlm.dataset import QADataset
from minispeech.speechlm.lm_model import next_token_loss
from minispeech.speechlm.scoring import majority_baseline, qa_metrics, qa_stats

LABELS = list(" abcdefghijklmnopqrstuvwxyz'")
QA = [
    ("call bob at nine", "what name is mentioned", "bob", "name"),
    ("call bob at nine", "what does the speaker say", "call bob at nine", "transcribe"),
    ("the red car", "what colour is mentioned", "red", "colour"),
    ("the red car", "what day is mentioned", "none", "day"),
    ("send a message to nina on monday", "what day is mentioned", "monday", "day"),
    (
        "send a message to nina on monday",
        "what is the last word",
        "monday",
        "last_word",
    ),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("salm")
    rng = np.random.default_rng(0)
    corpus, qa = [], []
    for k, text in enumerate(dict.fromkeys(t for t, *_ in QA)):
        wave = rng.standard_normal(4000 + 2000 * k).astype(np.float32) * 0.1
        sf.write(root / f"u{k}.wav", wave, 16000)
        corpus.append({"audio_filepath": f"u{k}.wav", "duration": len(wave) / 16000,
                       "text": text})  # fmt: skip
    by_text = {row["text"]: row for row in corpus}
    for text, question, answer, qtype in QA:
        row = by_text[text]
        audio = {k: row[k] for k in ("audio_filepath", "duration")}
        qa.append(
            {**audio, "prompt": question, "answer": answer, "question_type": qtype}
        )
    for name, rows in (("corpus.jsonl", corpus), ("qa.jsonl", qa)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctc = {
        "labels": LABELS,
        "preprocessor": {"features": 16, "dither": 0.0},
        "encoder": {"_target_": "minispeech.nn.ConformerEncoder", "feat_in": 16,
                    "n_layers": 1, "d_model": 24, "n_heads": 2, "conv_kernel_size": 3},
    }  # fmt: skip
    CTCModel(ctc).save_to(root / "asr.nemo")
    lm_cfg = {
        "tokenizer": {"dir": str(root / "tok"), "vocab_size": 60,
                      "train_manifest": str(root / "qa.jsonl")},
        "train_ds": {"manifest_filepath": str(root / "qa.jsonl"),
                     "transcripts_manifest": str(root / "corpus.jsonl")},
        "lm": {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_len": 128},
        "generation": {"max_new_tokens": 6},
    }  # fmt: skip
    torch.manual_seed(0)
    TextLMModel(lm_cfg).save_to(root / "lm.nemo")
    return root


def salm(files, **changes):
    cfg = {
        "asr_model": str(files / "asr.nemo"),
        "lm_model": str(files / "lm.nemo"),
        "adapter": {"reduction": "stack", "stride": 2, "d_model": 16, "n_layers": 1,
                    "n_heads": 2, "conv_kernel_size": 3, "dropout": 0.0},
        "generation": {"max_new_tokens": 6},
        "test_ds": {"manifest_filepath": str(files / "qa.jsonl")},
    }  # fmt: skip
    torch.manual_seed(1)
    return SALMModel({**cfg, **changes}).eval()


def batch_of(model, files, rows=range(6)):
    data = model.build_dataset({"manifest_filepath": str(files / "qa.jsonl")})
    return model.collate([data[k] for k in rows])


def test_splice_puts_the_frames_where_the_placeholder_was(files):
    model = salm(files)
    prompt = model.tokenizer.chat_prompt("<|audio|> what day is mentioned")
    frames = torch.randn(5, model.lm.d_model)
    spliced = model.splice(prompt, frames, [3, 4])
    at = prompt.index(model.tokenizer.audio_id)
    ids = torch.tensor(prompt[:at] + prompt[at + 1 :] + [3, 4])
    plain = model.lm.embed(ids.unsqueeze(0)).squeeze(0)
    assert spliced.shape == (len(prompt) - 1 + 5 + 2, model.lm.d_model)
    torch.testing.assert_close(spliced[at : at + 5], frames)
    torch.testing.assert_close(spliced[:at], plain[:at])
    torch.testing.assert_close(spliced[at + 5 :], plain[at:])


def test_loss_scores_the_answer_tokens_only(files):
    model = salm(files)
    batch = batch_of(model, files)
    _, targets, scored = model(
        batch["audio"], batch["audio_lens"], batch["prompt_ids"], batch["answer_ids"]
    )
    for b, answer in enumerate(batch["answer_ids"]):
        assert targets[b][scored[b]].tolist() == answer  # answer + <|eos|>, in order
    assert int(scored.sum()) == sum(len(a) for a in batch["answer_ids"])


def test_only_the_adapter_trains_by_default_and_the_encoder_stays_in_eval(files):
    model = salm(files).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("adapter.") for n in trainable)
    assert not model.asr.training and model.adapter.training
    loss = model.training_step(batch_of(model, files))["loss"]
    loss.backward()
    assert all(p.grad is None for p in model.lm.parameters())


def test_lora_trains_and_merges_to_the_same_answers(files):
    model = salm(files, lora={"rank": 4, "alpha": 8})
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in names) and any("lora_B" in n for n in names)
    for name, p in model.named_parameters():  # make B non-zero: LoRA changes outputs
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    batch = batch_of(model, files)
    args = (
        batch["audio"],
        batch["audio_lens"],
        batch["prompt_ids"],
        batch["answer_ids"],
    )
    with torch.no_grad():
        before = model(*args)[0]
        merge_lora(model)
        after = model(*args)[0]
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


VOICE = {
    "encoder_layers": [0, -1],
    "adapter": {"reduction": "stack", "stride": 2, "d_model": 16, "n_layers": 1,
                "n_heads": 2, "conv_kernel_size": 3, "dropout": 0.0,
                "utterance_stats": 2},
}  # fmt: skip


@pytest.mark.parametrize("changes", [{}, VOICE], ids=["output", "voice"])
def test_batched_answers_equal_one_by_one(files, changes):
    model = salm(files, **changes)
    batch = batch_of(model, files)
    with torch.no_grad():
        together = model.answer_batch(
            batch["audio"], batch["audio_lens"], batch["prompt_ids"]
        )
        alone = [
            model.answer_batch(
                batch["audio"][b : b + 1, : int(batch["audio_lens"][b])],
                batch["audio_lens"][b : b + 1],
                batch["prompt_ids"][b : b + 1],
            )[0]
            for b in range(len(together))
        ]
    assert together == alone


def test_silence_ablation_ignores_the_recording(files):
    model = salm(files, ablation="silence")
    audio = torch.randn(2, 8000)
    lens = torch.tensor([8000, 8000])
    with torch.no_grad():
        a, _ = model.perceive(audio, lens)
        b, _ = model.perceive(torch.randn(2, 8000), lens)
    torch.testing.assert_close(a, b)


def test_model_file_roundtrip_and_evaluation(files, tmp_path):
    model = salm(files)
    path = model.save_to(tmp_path / "salm.nemo")
    again = SALMModel.restore_from(path).eval()
    waves = [str(files / "u0.wav"), str(files / "u1.wav")]
    assert model.answer(waves, "what name is mentioned") == again.answer(
        waves, "what name is mentioned"
    )
    batch = batch_of(again, files)
    with torch.no_grad():
        metrics = again.validation_metrics(again.validation_step(batch))
    assert {"val_loss", "val_wer", "val_accuracy", "acc/day", "majority/day"} <= set(
        metrics
    )


@pytest.mark.parametrize(
    "question, match",
    [
        ("<|audio|> what day <|audio|>", "exactly one <|audio|> placeholder, found 2"),
        ("<|audio|>", "no question"),
        ("", "no question"),
    ],
)
def test_bad_prompts_are_named(files, question, match):
    model = salm(files)
    with pytest.raises(ValueError, match=match):
        model.answer([torch.zeros(4000)], question)


def test_prompt_without_placeholder_is_refused_by_the_tokenizer(files):
    model = salm(files)
    with pytest.raises(ValueError, match="found 0"):
        model.tokenizer.chat_prompt("what day is mentioned")


def test_model_files_of_the_wrong_kind_are_config_errors(files):
    with pytest.raises(ConfigError, match="asr_model: TextLMModel has no encoder"):
        salm(files, asr_model=str(files / "lm.nemo"))
    with pytest.raises(ConfigError, match="lm_model: not a TextLMModel"):
        salm(files, lm_model=str(files / "asr.nemo"))
    with pytest.raises(ConfigError, match="does not exist"):
        salm(files, asr_model=str(files / "missing.nemo"))


def test_text_stage_puts_the_transcript_where_the_audio_goes(files):
    lm = TextLMModel.restore_from(files / "lm.nemo")
    data = QADataset(
        files / "qa.jsonl", lm.tokenizer, text_only=True,
        transcripts_manifest=files / "corpus.jsonl",
    )  # fmt: skip
    tok = lm.tokenizer
    ids = data[2]["prompt_ids"]  # "the red car" / what colour is mentioned
    assert tok.audio_id not in ids
    assert tok.decode(ids) == tok.decode(
        tok.encode("the red car what colour is mentioned")
    )
    batch = lm.collate([data[k] for k in range(6)])
    loss = lm.training_step(batch)["loss"]
    assert torch.isfinite(loss)


def test_text_stage_without_a_transcript_names_the_line(files, tmp_path):
    lm = TextLMModel.restore_from(files / "lm.nemo")
    rows = [json.loads(x) for x in (files / "qa.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["question_type"] != "transcribe"]
    for r in rows:
        r["audio_filepath"] = str(files / r["audio_filepath"])
    bad = tmp_path / "qa.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ManifestError, match=r"qa.jsonl:1: .*no transcript"):
        QADataset(bad, lm.tokenizer, text_only=True)


def test_scores_by_hand():
    stats = qa_stats(
        ["day", "day", "day", "transcribe", "gender"],
        ["monday", "none", "none", "call bob", "female"],
        ["Monday.", "none", "friday", "call rob", "male"],
    )
    metrics = qa_metrics(stats)
    assert metrics["acc/day"] == pytest.approx(2 / 3)
    assert metrics["acc/gender"] == 0.0
    assert metrics["val_wer"] == pytest.approx(0.5)
    assert metrics["val_accuracy"] == pytest.approx(2 / 4)
    assert majority_baseline(stats["pairs"]) == {
        "day": pytest.approx(2 / 3),
        "gender": 1.0,
    }
    assert metrics["val_majority"] == pytest.approx((2 / 3 * 3 + 1.0) / 4)


@pytest.mark.parametrize(
    "prompt_format", ["{question}", "<|audio|> <|audio|> {question}", "<|audio|>"]
)
def test_prompt_format_needs_one_placeholder_and_the_question(files, prompt_format):
    with pytest.raises(ConfigError, match="model.prompt_format"):
        salm(files, prompt_format=prompt_format)


def test_an_asr_file_of_another_width_is_refused_by_name(files, tmp_path):
    model = salm(files)
    path = model.save_to(tmp_path / "salm.nemo")
    assert model.cfg["encoder_width"] == 24
    wide = CTCModel.restore_from(files / "asr.nemo").cfg
    wide["encoder"] = {**wide["encoder"], "d_model": 32}
    CTCModel(wide).save_to(tmp_path / "wide.nemo")
    with pytest.raises(ConfigError, match="32 wide.*expects encoder_width 24"):
        salm(files, asr_model=str(tmp_path / "wide.nemo"), encoder_width=24)
    assert SALMModel.restore_from(path).cfg["encoder_width"] == 24


def test_the_encoder_cache_changes_nothing_but_the_work(files):
    model = salm(files)
    batch = batch_of(model, files)
    args = (
        batch["audio"],
        batch["audio_lens"],
        batch["prompt_ids"],
        batch["answer_ids"],
    )
    with torch.no_grad():
        plain = model(*args)[0]
        cached = model(*args, batch["keys"])[0]  # fills the cache (3 recordings)
        assert len(model.encoder_cache) == 3
        again = model(*args, batch["keys"])[0]  # from the cache
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, cached)
    model.ablation = "silence"  # never cached: the silence is encoded each time
    with torch.no_grad():
        silent = model(*args, batch["keys"])[0]
    assert not torch.allclose(silent, plain)


def test_held_out_phrasings_are_scored_apart():
    stats = qa_stats(
        ["day", "day", "transcribe", "transcribe"],
        ["monday", "none", "call bob", "call bob"],
        ["monday", "friday", "call bob", "call rob"],
        ["train", "heldout", "train", "heldout"],
    )
    metrics = qa_metrics(stats)
    assert metrics["val_accuracy"] == 1.0 and metrics["heldout_accuracy"] == 0.0
    assert metrics["val_wer"] == 0.0 and metrics["heldout_wer"] == 0.5
    assert metrics["acc/day"] == 1.0 and metrics["heldout_acc/day"] == 0.0


def layer_norm64(x: torch.Tensor) -> torch.Tensor:
    """The textbook layer norm over the last axis, in float64: (x - mean) / std."""
    x = x.double()
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


def hidden_states64(model, audio, lens):
    """Every hidden state of the (one-layer) encoder, by hand: (B, T', D) each."""
    enc = model.asr.encoder
    feats, feat_lens = model.asr.preprocessor(audio, lens)
    x, sub_lens = enc.pre_encode(feats.transpose(1, 2), feat_lens)
    x, pos_emb = enc.pos_enc(x)
    t = x.size(1)
    att_mask = self_attention_mask(sub_lens, t, (-1, -1), "regular")
    first = enc.layers[0](x, att_mask, pos_emb, padding_mask(sub_lens, t))
    return [x, first], sub_lens


def test_encoder_layers_concatenate_the_normalized_hidden_states(files):
    model = salm(files, encoder_layers=[0, -1])
    assert model.encoder_layers == [0, 1]
    assert model.adapter.conformer.pre_encode.in_features == 2 * 2 * 24  # stack x2
    audio, lens = torch.randn(2, 8000), torch.tensor([8000, 5000])
    with torch.no_grad():
        states, state_lens = model.run_encoder(audio, lens)  # (B, 2 D, T')
        (h0, h1), sub_lens = hidden_states64(model, audio, lens)
    expected = torch.cat([layer_norm64(h0), layer_norm64(h1)], -1).transpose(1, 2)
    assert torch.equal(state_lens, sub_lens)
    for b, n in enumerate(state_lens):
        torch.testing.assert_close(
            states[b, :, :n].double(), expected[b, :, :n], atol=1e-5, rtol=1e-5
        )
    # the default reads the encoder's output, not a hidden state
    plain, _ = salm(files).run_encoder(audio, lens)
    assert plain.shape == (2, 24, states.shape[-1])


def test_weighted_layer_mix_is_a_softmax_average_and_trains(files):
    model = salm(files, encoder_layers=[0, 1], encoder_layer_mix="weighted")
    assert model.adapter.conformer.pre_encode.in_features == 2 * 24
    audio, lens = torch.randn(2, 8000), torch.tensor([8000, 8000])
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.3, -0.4]))
        states, _ = model.run_encoder(audio, lens)  # (B, 2 D, T')
        w = torch.tensor([0.3, -0.4], dtype=torch.float64).exp()
        w = w / w.sum()
        mixed = w[0] * states[:, :24].double() + w[1] * states[:, 24:].double()
        frames, _ = model.perceive(audio, lens)
        expected, _ = model.adapter(mixed.float(), torch.tensor([states.shape[-1]] * 2))
    torch.testing.assert_close(frames, expected, atol=1e-5, rtol=1e-5)
    model.train()
    loss = model.training_step(batch_of(model, files))["loss"]
    loss.backward()
    assert (
        model.layer_weights.requires_grad and model.layer_weights.grad.abs().sum() > 0
    )


def test_encoder_layers_survive_the_model_file_and_the_cache(files, tmp_path):
    model = salm(files, encoder_layers=[0, 1], encoder_layer_mix="weighted")
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([1.0, -1.0]))
    again = SALMModel.restore_from(model.save_to(tmp_path / "layers.nemo")).eval()
    assert torch.equal(again.layer_weights, model.layer_weights)
    batch = batch_of(again, files)
    args = (batch["audio"], batch["audio_lens"], batch["prompt_ids"])
    with torch.no_grad():
        plain = again(*args, batch["answer_ids"])[0]
        cached = again(*args, batch["answer_ids"], batch["keys"])[0]
        first = model(*args, batch["answer_ids"])[0]
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, first)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"encoder_layers": [0, 2]}, r"\[2\] out of range; the encoder has 1 layers"),
        ({"encoder_layers": [-3]}, r"\[-3\] out of range"),
        ({"encoder_layers": []}, "a non-empty list of layer indices"),
        ({"encoder_layers": "last"}, "a non-empty list of layer indices"),
        ({"encoder_layers": [0.5]}, "a non-empty list of layer indices"),
        ({"encoder_layers": [0], "encoder_layer_mix": "sum"}, "encoder_layer_mix"),
    ],
)
def test_bad_encoder_layers_are_named(files, changes, match):
    with pytest.raises(ConfigError, match=match):
        salm(files, **changes)


def test_text_stage_voice_word_is_read_from_the_gender_rows(files, tmp_path):
    cfg = TextLMModel.restore_from(files / "lm.nemo").cfg
    with pytest.raises(ConfigError, match="model.voice_word: true or false"):
        TextLMModel({**cfg, "tokenizer": {"dir": str(files / "tok")},
                     "voice_word": "yes"})  # fmt: skip
    rows = [json.loads(x) for x in (files / "qa.jsonl").read_text().splitlines()]
    rows.append({**rows[0], "prompt": "is the speaker male",
                 "answer": "male", "question_type": "gender"})  # fmt: skip
    manifest = tmp_path / "qa.jsonl"
    for r in rows:
        r["audio_filepath"] = str(files / r["audio_filepath"])
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = TextLMModel({**cfg, "tokenizer": {"dir": str(files / "tok")},
                      "voice_word": True})  # fmt: skip
    with pytest.raises(ManifestError, match=r"qa.jsonl:3: .*no transcript or gender"):
        lm.build_dataset({"manifest_filepath": str(manifest)})  # u1: no gender row
    u0 = [r for r in rows if r["audio_filepath"].endswith("u0.wav")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in u0))
    data = lm.build_dataset({"manifest_filepath": str(manifest)})
    tok = lm.tokenizer
    words = tok.encode("call bob at nine what name is mentioned")
    assert data[0]["prompt_ids"][2:-1] == [tok.token_id("<|male|>"), *words]


def test_soft_word_summary_is_an_expected_lm_embedding(files):
    soft = {**VOICE["adapter"], "summary": "soft_word"}
    model = salm(files, encoder_layers=[0, -1], adapter=soft)
    audio, lens = torch.randn(2, 8000), torch.tensor([8000, 6000])
    with torch.no_grad():
        enc, enc_lens = model.run_encoder(audio, lens)
        frames, _ = model.perceive(audio, lens)
        adapter = model.adapter
        stats = adapter.stats_norm(adapter.stats(enc, enc_lens))
        probs = adapter.stats_projection.logits(stats).double().softmax(-1)  # (B, V)
    expected = probs @ model.lm.embedding.weight.double()
    torch.testing.assert_close(frames[:, 0].double(), expected, atol=1e-6, rtol=0)
    assert "adapter.stats_projection.embedding" not in dict(model.named_parameters())
    with pytest.raises(ConfigError, match="model.adapter: summary soft_word: needs"):
        salm(files, adapter={**soft, "utterance_stats": 0})
    with pytest.raises(ConfigError, match="model.adapter: summary must be one of"):
        salm(files, adapter={**soft, "summary": "word"})


def test_ctc_compression_feeds_one_frame_per_recognized_label(files):
    model = salm(files, ctc_compress="drop_blank", ctc_posteriors=True)
    audio, lens = torch.randn(2, 8000), torch.tensor([8000, 6000])
    with torch.no_grad():
        compressed, counts = model.run_encoder(audio, lens)  # (B, D + V, J)
        enc, enc_lens = model.asr.encode(audio, lens)  # (B, D, T')
        log_probs = model.asr.head_log_probs(enc)  # (B, T', V)
    d_enc, n_classes = enc.size(1), log_probs.size(-1)
    assert compressed.size(1) == d_enc + n_classes
    for b in range(2):  # by hand: runs of the argmax label, blank runs dropped
        labels = log_probs[b, : enc_lens[b]].argmax(-1).tolist()
        frames = torch.cat([enc[b], log_probs[b].T.exp()])[:, : enc_lens[b]]
        runs, previous = [], None
        for t, label in enumerate(labels):
            if label != previous:
                runs.append((label, []))
            runs[-1][1].append(frames[:, t])
            previous = label
        runs = [r for r in runs if r[0] != model.asr.blank] or [(None, list(frames.T))]
        assert int(counts[b]) == len(runs)
        for j, (_, vectors) in enumerate(runs):
            expected = torch.stack(vectors).mean(0)
            torch.testing.assert_close(compressed[b, :, j], expected)
    batch = batch_of(model, files)
    args = (batch["audio"], batch["audio_lens"], batch["prompt_ids"])
    with torch.no_grad():
        plain = model(*args, batch["answer_ids"])[0]
        cached = model(*args, batch["answer_ids"], batch["keys"])[0]
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"ctc_compress": "mean"}, "model.ctc_compress: one of"),
        ({"ctc_posteriors": "yes"}, "model.ctc_posteriors: true or false"),
        (
            {
                "ctc_posteriors": True,
                "encoder_layers": [0, -1],
                "encoder_layer_mix": "weighted",
            },
            "model.encoder_layer_mix: weighted averages",
        ),
    ],
)
def test_bad_ctc_options_are_named(files, changes, match):
    with pytest.raises(ConfigError, match=match):
        salm(files, **changes)


def test_ctc_options_need_a_ctc_head(files, tmp_path):
    ctc = CTCModel.restore_from(files / "asr.nemo").cfg
    rnnt = {key: ctc[key] for key in ("labels", "preprocessor", "encoder")}
    rnnt = {**rnnt, "decoder": {"pred_hidden": 8}, "joint": {"joint_hidden": 8}}
    TransducerModel(rnnt).save_to(tmp_path / "rnnt.nemo")
    salm(files, asr_model=str(tmp_path / "rnnt.nemo"))  # its encoder alone is fine
    with pytest.raises(ConfigError, match="need an ASR model file with a CTC head"):
        salm(files, asr_model=str(tmp_path / "rnnt.nemo"), ctc_compress="merge")


def test_spec_augment_masks_the_encoder_input_in_training_only(files):
    masks = {"freq_masks": 2, "freq_width": 6, "time_masks": 2, "time_width": 0.4}
    model = salm(files, spec_augment=masks)
    plain = salm(files)
    audio, lens = torch.randn(2, 8000), torch.tensor([8000, 6000])
    keys = ["a", "b"]
    with torch.no_grad():
        heard, heard_lens = model.encode_audio(audio, lens, keys)  # eval: no masks
        expected, _ = plain.run_encoder(audio, lens)
        valid = (torch.arange(heard.size(-1)) < heard_lens[:, None])[:, None]
        torch.testing.assert_close(heard, expected * valid)  # the cache pads with 0
        assert set(model.encoder_cache) == {"a", "b"}
        model.encoder_cache.clear()
        model.train()
        torch.manual_seed(0)
        masked, masked_lens = model.encode_audio(audio, lens, keys)
        assert not model.encoder_cache  # new masks every time: nothing to keep
        assert torch.equal(masked_lens, heard_lens)
        assert not torch.allclose(masked, expected)
        feats, feat_lens = model.asr.preprocessor(audio, lens)
        feats = feats[..., : int(feat_lens.max())]
        torch.manual_seed(0)
        feats = model.spec_augment(feats, feat_lens)
        by_hand, _ = model.asr.encoder(feats, feat_lens)
    torch.testing.assert_close(masked, by_hand)
    with pytest.raises(ConfigError, match="model.spec_augment"):
        salm(files, spec_augment={"masks": 2})


def test_a_transcripts_manifest_gives_every_recording_its_words(files):
    """Without one, only recordings with a `transcribe` row carry their words (the
    test above); with the corpus manifest, every recording does."""
    model = salm(files, transcript_ctc=0.5, adapter=VOICE["adapter"])
    section = {
        "manifest_filepath": str(files / "qa.jsonl"),
        "transcripts_manifest": str(files / "corpus.jsonl"),
    }
    data = model.build_dataset(section)
    batch = model.collate([data[k] for k in range(6)])
    spoken = [model.tokenizer.encode(QA[k][0]) for k in range(6)]
    assert batch["transcript_ids"] == spoken and all(spoken)


def test_transcript_ctc_reads_the_frames_as_lm_tokens(files):
    model = salm(files, transcript_ctc=0.5, adapter=VOICE["adapter"])
    batch = batch_of(model, files)
    tok = model.tokenizer
    spoken = tok.encode("call bob at nine")  # u0 has a transcribe row; u1, u2 none
    assert [ids == spoken for ids in batch["transcript_ids"]] == [1, 1, 0, 0, 0, 0]
    assert batch["transcript_ids"][2:] == [[], [], [], []]
    frames = torch.randn(6, 30, model.lm.d_model, requires_grad=True)
    lens = torch.tensor([30, 24, 30, 30, 5, 5])
    loss = model.frame_ctc_loss(frames, lens, batch["transcript_ids"])
    # by hand, float64: frames after the statistics frame against [E ; blank]
    weight = torch.cat([model.lm.embedding.weight, model.ctc_blank[None]]).double()
    log_probs = (frames[:2, 1:].double() @ weight.T).log_softmax(-1)  # (2, 8, V + 1)
    expected = F.ctc_loss(
        log_probs.transpose(0, 1),
        torch.tensor([spoken, spoken]),
        lens[:2] - 1,
        torch.tensor([len(spoken)] * 2),
        blank=weight.size(0) - 1,
        zero_infinity=True,
    )
    assert 0 < float(expected.detach()) < float("inf")
    torch.testing.assert_close(loss.double(), expected, atol=1e-5, rtol=1e-5)
    loss.backward()  # the blank vector learns; items without words get no gradient
    assert model.ctc_blank.grad.abs().sum() > 0
    assert frames.grad[2:].abs().sum() == 0 and frames.grad[:2].abs().sum() > 0
    assert float(model.frame_ctc_loss(frames.detach(), lens, [[]] * 6)) == 0.0


def test_training_reads_the_encoder_cache_and_adds_the_transcript_ctc(files):
    model = salm(files, transcript_ctc=0.5)
    batch = batch_of(model, files)
    model.train()
    torch.manual_seed(0)
    step = model.training_step(batch)  # fills the cache (3 recordings)
    assert len(model.encoder_cache) == 3
    torch.manual_seed(0)
    frames, lens = model.perceive(batch["audio"], batch["audio_lens"])  # no cache
    torch.manual_seed(0)
    outputs = model.read(frames, lens, batch["prompt_ids"], batch["answer_ids"])
    lm_loss = next_token_loss(*outputs)
    ctc = model.frame_ctc_loss(frames, lens, batch["transcript_ids"])
    torch.testing.assert_close(step["loss"], lm_loss + 0.5 * ctc, atol=1e-4, rtol=1e-4)
    for bad in ("yes", -1, True):
        with pytest.raises(ConfigError, match="model.transcript_ctc: a loss weight"):
            salm(files, transcript_ctc=bad)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"ablation": "noise"}, r"model.ablation: one of \('none', 'silence'\)"),
        ({"lora": 8}, "model.lora: a mapping of"),
        ({"lora": {"rank": 4, "scale": 2}}, "scale"),
    ],
)
def test_bad_ablation_and_lora_are_named(files, changes, match):
    with pytest.raises(ConfigError, match=match):
        salm(files, **changes)
