"""One AED model, two outputs: the <|pnc|> prompt on the written form (`text_pnc`), the
<|nopnc|> prompt on the spoken form; their scores; cross-attention weights to plot.

The tiny model and tokenizer of test_aed_model.py, on a tokenizer that has seen both
forms.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_model import tiny_aed_config

from minispeech.asr.aed_dataset import PromptedDataset, written_form_scores
from minispeech.asr.aed_model import AEDModel
from minispeech.asr.aed_tokenizer import aggregate_from_manifest
from minispeech.core.config import ConfigError
from minispeech.data import AudioTextDataset
from minispeech.data.manifest import ManifestError

ROWS = [
    ("call bob at nine", "Call Bob at 9."),
    ("my number is five two seven", "My number is 5 2 7."),
    ("the red car is in the garden", "The red car is in the garden."),
    ("how many cups are in the hall", "How many cups are in the hall?"),
]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pnc")
    rng = np.random.default_rng(0)
    with open(folder / "train.jsonl", "w") as f:
        for k, (text, written) in enumerate(ROWS * 5):
            wave = rng.standard_normal(3200 + 400 * (k % 4)).astype(np.float32) * 0.1
            sf.write(folder / f"u{k}.wav", wave, 16000)
            row = {"audio_filepath": f"u{k}.wav", "duration": len(wave) / 16000}
            f.write(json.dumps({**row, "text": text, "text_pnc": written}) + "\n")
    return folder / "train.jsonl"


@pytest.fixture(scope="module")
def model(manifest, tmp_path_factory):
    tok_dir = tmp_path_factory.mktemp("agg") / "tok"
    aggregate_from_manifest(manifest, tok_dir, 60, ["en"])
    decoder = {"d_model": 24, "n_layers": 2, "n_heads": 2, "max_len": 64}
    cfg = tiny_aed_config(tok_dir, decoder=decoder)
    return AEDModel(cfg).eval()


def test_tokenizer_from_manifest_covers_the_written_form(model):
    ids = model.tokenizer.encode("My number is 5 2 7.")
    assert model.tokenizer.ids_to_text(ids) == "My number is 5 2 7."


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_items_draw_the_prompt_and_the_matching_text(model, manifest, fraction):
    data = model.build_dataset(
        {"manifest_filepath": str(manifest), "pnc_fraction": fraction}
    )
    torch.manual_seed(0)
    items = [data[k] for k in range(len(data))]
    drawn = [item["pnc"] for item in items]
    if fraction in (0.0, 1.0):
        assert set(drawn) == {bool(fraction)}
    else:
        assert 0 < sum(drawn) < len(drawn)
    for item, row in zip(items, data.rows):
        text = row["text_pnc"] if item["pnc"] else row["text"]
        assert item["tokens"].tolist() == model.tokenizer.encode(text)
        assert item["text_pnc"] == row["text_pnc"]
    batch = model.collate(items)
    prompts = batch["transcript"][:, : int(batch["prompt_lens"][0])].tolist()
    for prompt, pnc in zip(prompts, drawn):
        assert prompt == model.task_prompts[pnc]
        token = "<|pnc|>" if pnc else "<|nopnc|>"
        assert model.tokenizer.token_to_id(token) in prompt


def test_the_draws_follow_the_seed(model, manifest):
    data = model.build_dataset(
        {"manifest_filepath": str(manifest), "pnc_fraction": 0.5}
    )
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append([data[k]["pnc"] for k in range(len(data))])
    assert draws[0] == draws[1]


def test_missing_written_form_names_the_line(model, manifest, tmp_path):
    lines = manifest.read_text().splitlines()
    row = json.loads(lines[2])
    del row["text_pnc"]
    row["audio_filepath"] = str(manifest.parent / row["audio_filepath"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n")
    base = AudioTextDataset(bad, tokenizer=model.tokenizer)
    with pytest.raises(ManifestError, match=r"bad.jsonl:1: text_pnc: missing"):
        PromptedDataset(base, model.tokenizer, 0.5)
    PromptedDataset(base, model.tokenizer, 0.0)  # not needed, not asked for


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_bad_fraction_is_a_config_error(model, manifest, bad):
    with pytest.raises(ConfigError, match="pnc_fraction"):
        model.build_dataset({"manifest_filepath": str(manifest), "pnc_fraction": bad})


def test_written_form_scores_by_hand():
    written = ["My code is 5 2 7.", "Call Bob at 9.", "My number is 4 1 0 0."]
    spoken = [
        "my code is five two seven",
        "call bob at nine",
        "my number is four one zero zero",
    ]
    hyps = ["My code is 5 2 7.", "call Bob at 9", "My number is 4 1 0."]
    scores = written_form_scores(written, hyps, spoken)
    # "call" for "Call" and "9" for "9.": 2 errors; one "0" deleted: 1
    assert scores == {
        "pnc_word_errors": 3,
        "pnc_words": 6 + 4 + 7,
        "digit_sentences": 2,
        "numerals_exact": 1,
    }


def test_validation_scores_both_prompts(model, manifest):
    data = model.build_dataset({"manifest_filepath": str(manifest)})
    with torch.no_grad():
        stats = model.validation_step(model.collate([data[k] for k in range(4)]))
    metrics = model.validation_metrics(stats)
    assert {"val_wer", "val_wer_pnc", "val_numerals"} <= set(metrics)
    assert stats["digit_sentences"] == 1
    assert metrics["val_numerals"] in (0.0, 1.0)


def test_cross_attention_weights_are_distributions_over_real_frames(model):
    audio = torch.randn(2, 6400) * 0.1
    audio_lens = torch.tensor([6400, 3200])
    tokens = torch.tensor([model.task_prompts[False] + [20, 21]] * 2)  # (B, U)
    weights = model.cross_attention(audio, audio_lens, tokens)
    _, enc_lens = model.encode(audio, audio_lens)
    assert len(weights) == 2
    for w in weights:  # (B, H, U, T')
        assert w.shape[:3] == (2, 2, tokens.size(1))
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:3]))
        assert float(w[1, :, :, int(enc_lens[1]) :].abs().max()) == 0.0
    # asking for the weights leaves the output as it was
    memory, lens = model.encode(audio, audio_lens)
    plain, _ = model.decoder(tokens, memory.transpose(1, 2), lens)
    with_weights, _ = model.decoder(
        tokens, memory.transpose(1, 2), lens, need_weights=True
    )
    torch.testing.assert_close(plain, with_weights)
