"""AEDModel: the label-smoothed loss, which positions it scores, the decoder sequence,
cached decoding, the length cap, config errors and the model file with its tokenizer.

A tiny model (16 mels, one Conformer layer of width 16, a one-layer decoder of width 24
so the projection is a Linear) on a tokenizer trained from a few sentences.
"""

import json
import tarfile

import pytest
import torch
import torch.nn.functional as F
from tiny_model import tiny_aed_config

from minispeech.asr.aed_model import AEDModel
from minispeech.asr.aed_tokenizer import build_aggregate_tokenizer
from minispeech.core.config import ConfigError
from minispeech.nn.label_smoothing import label_smoothed_nll

TEXTS = ["turn on the light", "call bob at nine", "the red car is in the garden"] * 20


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agg")
    build_aggregate_tokenizer(TEXTS, folder, 40)
    return folder


@pytest.fixture
def model(tok_dir):
    return AEDModel(tiny_aed_config(tok_dir)).eval()


def items(model, texts=("call bob", "the red car is in the garden")):
    return [
        {
            "audio": torch.randn(3200 + 800 * k) * 0.1,
            "tokens": torch.tensor(model.tokenizer.encode(text)),
            "id": f"utt{k}",
            "text": text,
        }
        for k, text in enumerate(texts)
    ]


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_the_textbook_formula(eps):
    log_probs = torch.randn(2, 5, 7, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    # q(v) = (1 - eps) [v = y] + eps / V; loss = -sum_v q(v) ln p(v), mean over mask
    total, count = 0.0, 0
    for b in range(2):
        for u in range(5):
            if mask[b, u]:
                q = torch.full((7,), eps / 7, dtype=torch.float64)
                q[targets[b, u]] += 1 - eps
                total += float(-(q * log_probs[b, u]).sum())
                count += 1
    loss = label_smoothed_nll(log_probs, targets, mask, eps)
    assert abs(float(loss) - total / count) < 1e-12
    reference = F.cross_entropy(
        log_probs[mask], targets[mask], label_smoothing=eps
    )  # the same formula in PyTorch
    assert abs(float(loss) - float(reference)) < 1e-12


def test_collate_builds_prompt_text_eos(model):
    batch = model.collate(items(model))
    prompt, tok = model.train_prompt, model.tokenizer
    for b, text in enumerate(batch["texts"]):
        ids = tok.encode(text)
        n = len(prompt) + len(ids) + 1
        row = batch["transcript"][b].tolist()
        assert row[:n] == prompt + ids + [tok.eos_id]
        assert set(row[n:]) <= {tok.pad_id}
        assert int(batch["transcript_lens"][b]) == n
    assert batch["prompt_lens"].tolist() == [len(prompt)] * 2


def test_loss_scores_text_and_eos_only(model, monkeypatch):
    batch = model.collate(items(model))
    loss = model.training_step(batch)["loss"]
    transcript, lens = batch["transcript"], batch["transcript_lens"]
    log_probs = model(batch["audio"], batch["audio_lens"], transcript, lens)  # (B,U,V)
    n_prompt, picked = len(model.train_prompt), []
    for b in range(2):
        for j in range(n_prompt - 1, int(lens[b]) - 1):  # predicts token j+1
            picked.append(-log_probs[b, j, transcript[b, j + 1]])
    assert len(picked) == int(batch["token_lens"].sum()) + 2  # text + one EOS each
    assert torch.allclose(loss, torch.stack(picked).mean(), atol=1e-5)

    # garbage where the prompt's own tokens and the padding are predicted: same loss
    log_probs_of = model.log_probs

    def spoiled(tokens, *args, **kwargs):
        out, cache = log_probs_of(tokens, *args, **kwargs)  # (B, U-1, V)
        out = out.clone()
        out[:, : n_prompt - 1] = -1000.0
        for b in range(2):
            out[b, int(lens[b]) - 1 :] = -1000.0
        return out, cache

    monkeypatch.setattr(model, "log_probs", spoiled)
    assert torch.allclose(model.training_step(batch)["loss"], loss, atol=1e-6)


def test_auxiliary_ctc_mixes_into_the_loss(tok_dir):
    model = AEDModel(tiny_aed_config(tok_dir, loss={"ctc_weight": 0.25})).eval()
    assert model.ctc_head.out_features == model.num_classes + 1  # blank last
    out = model.training_step(model.collate(items(model)))
    mixed = 0.75 * out["aed_loss"] + 0.25 * out["ctc_loss"]
    assert torch.allclose(out["loss"], mixed)
    assert AEDModel(tiny_aed_config(tok_dir)).ctc_head is None  # default weight 0


NEMO_STYLE = {"xscaling": False, "embedding_norm": True, "tie_embedding": True}


@pytest.mark.parametrize("style", [{}, NEMO_STYLE], ids=["vaswani", "nemo"])
def test_cached_steps_equal_full_recomputation(tok_dir, style):
    decoder = {**tiny_aed_config(tok_dir)["decoder"], **style}
    model = AEDModel(tiny_aed_config(tok_dir, decoder=decoder)).eval()
    memory, memory_lens = torch.randn(2, 9, 24), torch.tensor([9, 6])  # (B, T', D)
    tokens = torch.randint(0, model.tokenizer.vocab_size, (2, 8))
    full, _ = model.decode_step(tokens, memory, memory_lens, None)  # (B, 8, V)
    steps, cache = [], None
    for start, end in ((0, 5), (5, 6), (6, 7), (7, 8)):  # a prompt, then one at a time
        log_probs, cache = model.decode_step(
            tokens[:, start:end], memory, memory_lens, cache
        )
        steps.append(log_probs)
    assert cache.length == 8
    vocab = model.tokenizer.vocab_size  # ids above it are padding, at -inf
    assert (torch.cat(steps, dim=1)[..., :vocab] - full[..., :vocab]).abs().max() < 1e-5
    assert full.dtype == torch.float32 and full.shape == (2, 8, model.num_classes)
    assert torch.isinf(full[..., vocab:]).all()
    # the padding's share is NeMo's: decode_step does not renormalise without it
    all_v, _ = model.log_probs(tokens, memory, memory_lens)  # (B, 8, V)
    assert torch.allclose(all_v.exp().sum(-1), torch.ones(2, 8), atol=1e-5)
    assert torch.equal(all_v[..., :vocab], full[..., :vocab])


def test_vocabulary_is_padded_to_a_multiple_of_8(model):
    assert model.tokenizer.vocab_size == 51  # 11 special + 40 BPE
    assert model.num_classes == 56 == model.decoder.output.out_features


def test_generation_cap_follows_nemo(model):
    # cap = min(max_len 64, T' + delta 4); the decoder reads cap positions
    assert model.max_generation_length(18, 5) == 18 + 4 - 5 + 1
    assert model.max_generation_length(torch.tensor([3, 18]), 5) == 18
    assert model.max_generation_length(100, 5) == 64 - 5 + 1
    model.decoding_cfg["max_generation_delta"] = -1  # NeMo's default: no frame cap
    assert model.max_generation_length(5, 5) == 60


def test_config_errors_name_the_problem(tok_dir):
    with pytest.raises(ConfigError, match="no labels"):
        AEDModel({**tiny_aed_config(tok_dir), "labels": ["a", "b"]})
    with pytest.raises(ConfigError, match="n_layer"):
        bad = tiny_aed_config(tok_dir)
        bad["decoder"] = {**bad["decoder"], "n_layer": 2}
        AEDModel(bad)
    with pytest.raises(ConfigError, match=r"model.prompt: .*<\|fr\|>"):
        AEDModel(tiny_aed_config(tok_dir, prompt={"target_lang": "fr"}))
    with pytest.raises(ConfigError, match="no train_manifest"):
        AEDModel(tiny_aed_config(tok_dir, tokenizer={"dir": str(tok_dir / "missing")}))


def test_tokenizer_is_trained_on_first_use(tok_dir, tmp_path):
    manifest = tmp_path / "train.jsonl"
    rows = [
        {"audio_filepath": f"{k}.wav", "duration": 1.0, "text": text}
        for k, text in enumerate(TEXTS)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok_cfg = {
        "dir": str(tmp_path / "tok"),
        "vocab_size": 40,
        "train_manifest": str(manifest),
    }
    model = AEDModel(tiny_aed_config(tok_dir, tokenizer=tok_cfg))
    assert (tmp_path / "tok" / "spl_tokens.model").is_file()
    assert model.tokenizer.tokens == AEDModel(tiny_aed_config(tok_dir)).tokenizer.tokens


def test_model_file_roundtrip_carries_the_tokenizer(model, tmp_path):
    path = model.save_to(tmp_path / "aed.nemo")
    again = AEDModel.restore_from(path).eval()
    assert again.tokenizer.tokens == model.tokenizer.tokens
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert any(name.endswith("spl_tokens.model") for name in names), names
    assert any(name.endswith("en.model") for name in names), names
    batch = model.collate(items(model))
    args = (batch["audio"], batch["audio_lens"], batch["transcript"])
    expected = model(*args, batch["transcript_lens"])
    assert torch.equal(again(*args, batch["transcript_lens"]), expected)
    # the output layer stays tied after loading when the config ties it
    tied = AEDModel(tiny_aed_config(model.cfg["tokenizer"]["dir"], decoder={
        "d_model": 24, "n_layers": 1, "n_heads": 2, "tie_embedding": True,
    }))  # fmt: skip
    assert tied.decoder.output.weight is tied.decoder.embedding.weight


def test_transcribe_and_validation_run_greedy(model):
    pytest.importorskip("minispeech.asr.aed_decoding")
    waves = [torch.randn(4000) * 0.1, torch.randn(6000) * 0.1]
    texts = model.transcribe(waves, batch_size=2)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert (
        model.transcribe(waves[:1], prompt={"pnc": True}, beam_size=2)[0]
        == (model.transcribe(waves[:1], pnc=True, beam_size=2)[0])
    )
    with torch.no_grad():  # as the training loop calls it
        stats = model.validation_step(model.collate(items(model)))
    metrics = model.validation_metrics(stats)
    assert stats["count"] == 2 and 0.0 <= metrics["val_cer"]


def test_lexicon_constrains_the_spoken_form_only(tok_dir, tmp_path):
    """decoding.lexicon: the <|nopnc|> transcripts (greedy's beam of one included)
    spell lexicon words only, where the random model spells others without it; the
    <|pnc|> transcripts are left free. A lexicon with greedy is refused."""
    words = tmp_path / "words.txt"
    words.write_text("call\nbob\nthe\nlight\n")
    torch.manual_seed(0)
    free = AEDModel(tiny_aed_config(tok_dir)).eval()
    cfg = tiny_aed_config(
        tok_dir, decoding={"max_generation_delta": 4, "lexicon": str(words)}
    )
    constrained = AEDModel(cfg).eval()
    constrained.load_state_dict(free.state_dict())
    waves = [torch.randn(4000 + 900 * k) * 0.1 for k in range(4)]
    free_texts = free.transcribe(waves, beam_size=2)
    assert any(set(t.split()) - {"call", "bob", "the", "light"} for t in free_texts)
    for beam in (1, 2):
        for text in constrained.transcribe(waves, beam_size=beam):
            assert set(text.split()) <= {"call", "bob", "the", "light"}, text
    assert constrained.transcribe(waves, pnc=True, beam_size=2) == free.transcribe(
        waves, pnc=True, beam_size=2
    )
    greedy = {"strategy": "greedy", "lexicon": str(words)}
    with pytest.raises(ConfigError, match="lexicon.*strategy=beam"):
        AEDModel(tiny_aed_config(tok_dir, decoding=greedy))


def test_freeze_patterns_stop_training_what_they_match(tok_dir):
    cfg = tiny_aed_config(tok_dir, freeze=["encoder.*", "projection.*"])
    model = AEDModel(cfg)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(model.frozen) == {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("encoder.", "projection."))
    }
    assert trained and not any(n.startswith("encoder.") for n in trained)
    with pytest.raises(ConfigError, match=r"model\.freeze: .*\['decodr\.\*'\]"):
        AEDModel(tiny_aed_config(tok_dir, freeze=["decodr.*"]))
    with pytest.raises(ConfigError, match="model.freeze: patterns must be a list"):
        AEDModel(tiny_aed_config(tok_dir, freeze="encoder.*"))
