"""AED decoding speed: greedy and beam search, with and without the key/value cache.

Decodes 16 test utterances (one batch) of data/tinyspeech/test.jsonl with an AEDModel:
a trained model file (--model, e.g. experiments/fastconformer_aed_tiny/...nemo), or
else configs/asr/fastconformer_aed_tiny.yaml at random initialisation (then every
hypothesis runs to the length cap: the slowest case). "No cache" recomputes the whole
prefix through the decoder at every step (`decode_step` with cache=None), which is
what the cache saves; the encoder runs once either way and is timed separately.
RTFx = audio seconds / compute seconds (higher is faster).

Usage: python benchmarks/aed_decoding.py [--model M] [--threads 2] [--repeat 3]
Expected: about a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
import tempfile
from pathlib import Path

import torch
from common import median_ms

from minispeech.asr import AEDModel, aed_beam_search, aed_greedy_decode
from minispeech.asr.asr_model import pad_waves
from minispeech.core.config import load_recipe
from minispeech.core.model import restore_from
from minispeech.data import read_manifest

REPO = Path(__file__).resolve().parents[1]


def build(model_path: str | None) -> AEDModel:
    if model_path:
        return restore_from(model_path).eval()
    exp_dir = tempfile.mkdtemp()  # the recipe's tokenizer is trained there
    cfg = load_recipe(REPO / "configs/asr/fastconformer_aed_tiny.yaml", REPO, exp_dir)
    return AEDModel(cfg["model"]).eval()


def greedy_without_cache(model, memory, lens, prompt, eos_id, max_len):
    """Greedy decoding that feeds the whole prefix at every step (no cache)."""
    tokens = prompt  # (B, P)
    for _ in range(max_len):
        log_probs, _ = model.decode_step(tokens, memory, lens, None)  # (B, L, V)
        tokens = torch.cat([tokens, log_probs[:, -1].argmax(-1, keepdim=True)], 1)
        if (tokens[:, prompt.shape[1] :] == eos_id).any(1).all():
            break
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.model)
    rows = read_manifest(REPO / "data/tinyspeech/test.jsonl")[:16]
    audio, audio_lens = pad_waves(
        model.load_inputs([r["audio_filepath"] for r in rows])
    )
    seconds = float(audio_lens.sum()) / model.sample_rate
    ids = model.tokenizer.prompt_ids(**{**model.prompt_cfg, "pnc": False})
    with torch.no_grad():
        memory, lens = model.encode(audio, audio_lens)  # (B, T', D)
        prompt = torch.tensor(ids).expand(len(rows), -1)  # (B, P)
        max_len = model.max_generation_length(memory.size(1), len(ids))
        args_ = (model, memory, lens, prompt, model.tokenizer.eos_id, max_len)
        times = median_ms(
            {
                "encoder": lambda: model.encode(audio, audio_lens),
                "greedy, cache": lambda: aed_greedy_decode(*args_),
                "greedy, no cache": lambda: greedy_without_cache(*args_),
                "beam 4, cache": lambda: aed_beam_search(*args_, beam_size=4),
            },
            args.repeat,
        )
    print(f"{len(rows)} utterances, {seconds:.1f} s of audio, max {max_len} tokens")
    print(f"{'step':<18} {'ms':>9} {'RTFx':>8}")
    for name, ms in times.items():
        print(f"{name:<18} {ms:>9.1f} {seconds / (ms / 1e3):>8.0f}")


if __name__ == "__main__":
    main()
