"""Soft tokens: CTC posteriors times the LM's embeddings, against a float64 loop, and
a SALMModel whose LM shares its ASR model's word pieces.

Tiny pieces built in a temporary folder: a chat LM whose SentencePiece model is also
the CTC model's tokenizer (one Conformer layer), both untrained.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from minispeech.asr import CTCModel
from minispeech.core.config import ConfigError
from minispeech.speechlm import SALMModel, TextLMModel
from minispeech.speechlm.soft_tokens import soft_token_embeddings

TEXTS = ["call bob at nine", "the red car", "send a message to nina on monday"]


def soft_tokens64(posteriors, blank, embedding):
    """The textbook sum, one frame and one piece at a time, in float64."""
    n_batch, n_frames, n_classes = posteriors.shape
    out = torch.zeros(n_batch, n_frames, embedding.size(1), dtype=torch.float64)
    for b in range(n_batch):
        for j in range(n_frames):
            pieces = [k for k in range(n_classes) if k != blank]
            total = sum(float(posteriors[b, j, k]) for k in pieces)
            for row, k in enumerate(pieces):
                weight = float(posteriors[b, j, k]) / total
                out[b, j] += weight * embedding[row].double()
    return out


@pytest.mark.parametrize("blank", [0, 3, 7])
def test_soft_tokens_equal_the_float64_sum(blank):
    torch.manual_seed(blank)
    posteriors = torch.randn(2, 5, 8).softmax(-1)  # (B, J, V + 1)
    embedding = torch.randn(11, 6)  # the LM has more tokens than the 7 pieces
    got = soft_token_embeddings(posteriors, blank, embedding)
    expected = soft_tokens64(posteriors, blank, embedding)
    torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=0)
    # a frame sure of one piece is that piece's embedding, whatever the blank holds
    sure = torch.zeros(1, 1, 8)
    piece = 5 if blank != 5 else 4
    sure[0, 0, piece], sure[0, 0, blank] = 0.3, 0.7
    row = piece - (piece > blank)  # pieces are numbered without the blank
    torch.testing.assert_close(
        soft_token_embeddings(sure, blank, embedding)[0, 0], embedding[row]
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("soft")
    rng = np.random.default_rng(0)
    corpus, qa = [], []
    for k, text in enumerate(TEXTS):
        wave = rng.standard_normal(6000 + 2000 * k).astype(np.float32) * 0.1
        sf.write(root / f"u{k}.wav", wave, 16000)
        audio = {"audio_filepath": f"u{k}.wav", "duration": len(wave) / 16000}
        corpus.append({**audio, "text": text})
        qa.append({**audio, "prompt": "what does the speaker say", "answer": text,
                   "question_type": "transcribe"})  # fmt: skip
    for name, rows in (("corpus.jsonl", corpus), ("qa.jsonl", qa)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm_cfg = {
        "tokenizer": {"dir": str(root / "tok"), "vocab_size": 40,
                      "train_manifest": str(root / "qa.jsonl")},
        "train_ds": {"manifest_filepath": str(root / "qa.jsonl"),
                     "transcripts_manifest": str(root / "corpus.jsonl")},
        "lm": {"d_model": 32, "n_layers": 1, "n_heads": 2, "max_len": 128},
        "generation": {"max_new_tokens": 6},
    }  # fmt: skip
    torch.manual_seed(0)
    TextLMModel(lm_cfg).save_to(root / "lm.nemo")
    encoder = {"_target_": "minispeech.nn.ConformerEncoder", "feat_in": 16,
               "n_layers": 1, "d_model": 24, "n_heads": 2,
               "conv_kernel_size": 3}  # fmt: skip
    pre = {"features": 16, "dither": 0.0}
    shared = {"tokenizer": {"dir": str(root / "tok"), "type": "bpe"}}
    CTCModel({**shared, "preprocessor": pre, "encoder": encoder}).save_to(
        root / "asr.nemo"
    )
    chars = {"labels": list(" abcdefghijklmnopqrstuvwxyz'")}
    CTCModel({**chars, "preprocessor": pre, "encoder": encoder}).save_to(
        root / "chars.nemo"
    )
    return root


def salm(files, **changes):
    cfg = {
        "asr_model": str(files / "asr.nemo"),
        "lm_model": str(files / "lm.nemo"),
        "soft_tokens": True,
        "adapter": {"d_model": 16, "n_layers": 1, "n_heads": 2,
                    "conv_kernel_size": 3, "dropout": 0.0},
        "generation": {"max_new_tokens": 6},
    }  # fmt: skip
    torch.manual_seed(1)
    return SALMModel({**cfg, **changes}).eval()


def test_untrained_frames_are_the_soft_tokens_of_each_recognized_piece(files):
    model = salm(files, soft_tokens={"temperature": 1e-6})
    assert model.compress == "drop_blank" and model.posteriors
    audio, lens = torch.randn(2, 9000), torch.tensor([9000, 7000])
    with torch.no_grad():
        frames, frame_lens = model.perceive(audio, lens)  # (B, J, D_lm)
        enc, enc_lens = model.asr.encode(audio, lens)
        log_probs = model.asr.head_log_probs(enc)  # (B, T', V + 1)
    for b in range(2):  # by hand: the greedy CTC pieces' own LM embeddings
        labels = log_probs[b, : enc_lens[b]].argmax(-1).tolist()
        pieces = [k for t, k in enumerate(labels) if t == 0 or k != labels[t - 1]]
        pieces = [k for k in pieces if k != model.asr.blank]
        assert pieces, "the random model hears nothing; pick another seed"
        assert int(frame_lens[b]) == len(pieces)
        expected = model.lm.embedding.weight[pieces]  # (J_b, D_lm)
        torch.testing.assert_close(
            frames[b, : len(pieces)], expected, atol=1e-4, rtol=0
        )


def test_soft_tokens_train_and_survive_the_model_file(files, tmp_path):
    model = salm(files, adapter={"d_model": 16, "n_layers": 0, "utterance_stats": 1,
                                 "summary": "soft_word"})  # fmt: skip
    data = model.build_dataset({"manifest_filepath": str(files / "qa.jsonl")})
    batch = model.collate([data[k] for k in range(3)])
    model.train()
    loss = model.training_step(batch)["loss"]
    loss.backward()
    assert model.adapter.projection.weight.grad.abs().sum() > 0
    model.eval()
    model.save_to(tmp_path / "salm.nemo")
    again = SALMModel.restore_from(tmp_path / "salm.nemo").eval()
    audio, lens = batch["audio"], batch["audio_lens"]
    with torch.no_grad():
        torch.testing.assert_close(
            again.perceive(audio, lens), model.perceive(audio, lens)
        )


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"soft_tokens": "yes"}, "model.soft_tokens: true, false or"),
        (
            {"soft_tokens": {"temperature": 0}},
            "model.soft_tokens.temperature: a number",
        ),
        ({"soft_tokens": {"tau": 1}}, "model.soft_tokens"),
        ({"ctc_posteriors": False}, "model.ctc_posteriors: soft_tokens are made"),
        ({"adapter": {"reduction": "stack", "stride": 2}}, "model.adapter.reduction"),
    ],
)
def test_bad_soft_token_settings_are_named(files, changes, match):
    with pytest.raises(ConfigError, match=match):
        salm(files, **changes)


def test_an_asr_model_with_other_labels_is_refused(files):
    with pytest.raises(ConfigError, match="the LM's own text pieces"):
        salm(files, asr_model=str(files / "chars.nemo"))
