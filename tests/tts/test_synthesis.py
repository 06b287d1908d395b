"""Text -> wave: word timings from token durations, the duration error, the
Synthesizer with either vocoder, and the `synthesize` verb end to end."""

import json

import pytest
import soundfile
import torch
from test_fastpitch import tiny_config

from minispeech.cli import main
from minispeech.tts.fastpitch_model import FastPitchModel
from minispeech.tts.synthesis import (
    Synthesizer,
    token_word_times,
    word_duration_error,
)
from minispeech.tts.tokenizer import EnglishCharsTokenizer

TOKENIZER = EnglishCharsTokenizer(pad_with_space=True)


def test_word_times_follow_the_rounded_token_durations():
    tokens = torch.tensor(TOKENIZER.encode("go on"))  # " go on " : 7 tokens
    durations = torch.tensor([2.0, 1.4, 2.6, 1.0, 0.5, 3.0, 4.0])
    words = token_word_times(tokens, durations, TOKENIZER, 1.0, 0.01)
    # frames 2, 1, 3, 1, 1 (0.5 rounds up), 3, 4: "go" = frames 2..5, "on" = 7..10
    assert [w for w, _, _ in words] == ["go", "on"]
    assert words[0][1:] == pytest.approx([0.02, 0.06])
    assert words[1][1:] == pytest.approx([0.07, 0.11])
    faster = token_word_times(tokens, durations, TOKENIZER, 2.0, 0.01)
    # pace 2: floor(d / 2 + 0.5) = 1, 1, 1, 1, 0, 2, 2: "on" = frames 4..6
    assert faster[1][1:] == pytest.approx([0.04, 0.06])


def test_word_duration_error_is_the_mean_relative_error():
    reference = [["a", 0.0, 0.2], ["b", 0.3, 0.7]]
    predicted = [["a", 0.0, 0.3], ["b", 0.3, 0.5]]
    assert word_duration_error(predicted, reference) == pytest.approx((0.5 + 0.5) / 2)
    with pytest.raises(ValueError, match="1 predicted words but 2"):
        word_duration_error(predicted[:1], reference)


@pytest.fixture(scope="module")
def acoustic():
    model = FastPitchModel(tiny_config())
    with torch.no_grad():  # a few frames per character, as a trained model's
        model.fastpitch.duration_predictor.fc.bias.fill_(1.5)
    return model.eval()


def test_synthesizer_griffin_lim_gives_one_hop_per_frame(acoustic):
    result = Synthesizer(acoustic, "griffin-lim", gl_iters=4)("go on")
    assert result.wave.shape == (result.mel.shape[1] * 64,)  # hop 64
    assert torch.isfinite(result.wave).all() and result.wave.abs().max() > 0
    assert [w for w, _, _ in result.words] == ["go", "on"]
    frames = torch.floor(result.durations + 0.5).sum()
    assert result.mel.shape[1] == int(frames)


def test_synthesizer_refuses_a_vocoder_of_another_rate(acoustic):
    class Vocoder(torch.nn.Module):
        sample_rate = 22050

    with pytest.raises(ValueError, match="22050 Hz"):
        Synthesizer(acoustic, Vocoder())


def test_synthesize_verb_writes_wavs_and_a_manifest(acoustic, tmp_path, capsys):
    acoustic.save_to(tmp_path / "fp.nemo")
    one = tmp_path / "one.wav"
    args = ["synthesize", str(tmp_path / "fp.nemo"), "--gl-iters", "2"]
    assert main([*args, "--text", "go on", "--out", str(one)]) == 0
    wave, rate = soundfile.read(one)
    assert rate == 16000 and len(wave) > 0
    rows = [{"audio_filepath": "x/a.wav", "text": "go left"}, {"text": "stop"}]
    manifest = tmp_path / "texts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main([*args, "--manifest", str(manifest), "--out", str(out)]) == 0
    written = [json.loads(line) for line in (out / "synthesized.jsonl").open()]
    assert [r["audio_filepath"] for r in written] == ["a.wav", "line00002.wav"]
    assert [r["text"] for r in written] == ["go left", "stop"]
    assert soundfile.info(out / "a.wav").duration == pytest.approx(
        written[0]["duration"]
    )
    assert [w for w, _, _ in written[0]["words"]] == ["go", "left"]
    slow = tmp_path / "slow.wav"
    assert main([*args, "--text", "go on", "--out", str(slow), "--pace", "0.5"]) == 0
    assert soundfile.info(slow).frames > 1.5 * soundfile.info(one).frames
    assert "real time" in capsys.readouterr().out
