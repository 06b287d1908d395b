"""SpeechLM speed: generation with and without the KV cache; adapter frame rates.

1. Generation: the LM of configs/speechlm/lm_tiny.yaml (random weights: the cost of a
   token does not depend on them) answers a batch of 16 prompts of 40 positions (a
   question + about 1.6 s of adapted audio frames), 32 new tokens each, greedy; no stop
   token, so every run makes the same number of tokens. "With cache" feeds one new
   token per step (`generate`); "without" recomputes the whole sequence every step
   (`generate_reference`), which is what the cache saves. Tokens/s counts new tokens.
2. Adapter frame rate: one SALM training step (forward + backward of adapter and LM,
   the encoder output given) on 16 recordings of 4 s (100 encoder frames of 40 ms),
   for each reduction of configs/speechlm/salm_tiny.yaml's adapter: none, stack x2,
   stack x4, pool x2, pool x4. Fewer frames: a shorter LM sequence.

Usage: python benchmarks/speechlm.py [--threads 2] [--repeat 5]
Expected: under a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
from pathlib import Path

import torch
from common import median_ms

from minispeech.core.config import load_config
from minispeech.speechlm import ModalityAdapter, TransformerLM
from minispeech.speechlm.generation import generate, generate_reference

REPO = Path(__file__).resolve().parents[1]
V = 262  # the recipe's vocabulary: 256 BPE pieces + 6 chat tokens


def generation(repeat: int) -> None:
    lm_cfg = load_config(REPO / "configs/speechlm/lm_tiny.yaml")["model"]["lm"]
    lm = TransformerLM(V, **{**lm_cfg, "dropout": 0.0}).eval()
    embeds = torch.randn(16, 40, lm.d_model) * 0.02  # (B, L, D)
    mask = torch.ones(16, 40, dtype=torch.bool)
    new = 32
    args = (lm, embeds, mask, new)
    times = median_ms(
        {
            "with cache": lambda: generate(*args),
            "without cache": lambda: generate_reference(*args),
        },
        repeat,
    )
    print("\nGeneration: 16 prompts x 40 positions, 32 new tokens each, greedy")
    print("| decoding | ms | tokens/s | vs cache |")
    print("|---|---|---|---|")
    for name, ms in times.items():
        rate = 16 * new / (ms / 1e3)
        print(f"| {name} | {ms:.1f} | {rate:,.0f} | {ms / times['with cache']:.2f}x |")


def adapter_step(repeat: int) -> None:
    cfg = load_config(REPO / "configs/speechlm/salm_tiny.yaml")["model"]
    lm_cfg = load_config(REPO / "configs/speechlm/lm_tiny.yaml")["model"]["lm"]
    lm = TransformerLM(V, **lm_cfg)
    enc = torch.randn(16, 128, 100)  # (B, D_enc, T'): 4 s of 40 ms frames
    enc_lens = torch.full((16,), 100)
    base = {k: v for k, v in cfg["adapter"].items() if k not in ("reduction", "stride")}
    variants = [("none", 1), ("stack", 2), ("stack", 4), ("pool", 2), ("pool", 4)]
    fns, frames = {}, {}
    for reduction, stride in variants:
        adapter = ModalityAdapter(128, lm.d_model, reduction, stride, **base)
        name = f"{reduction} x{stride}" if reduction != "none" else "none"

        def step(adapter=adapter):
            x, lens = adapter(enc, enc_lens)  # (B, T'', D)
            prompt = torch.randn(16, 12, lm.d_model)  # question + answer positions
            logits, _ = lm(inputs_embeds=torch.cat([x, prompt], 1))
            logits.float().logsumexp(-1).mean().backward()

        fns[name] = step
        frames[name] = int(adapter(enc, enc_lens)[1][0])
    times = median_ms(fns, repeat)
    print("\nSALM training step (adapter + LM, forward + backward), 16 x 4 s")
    print("| adapter reduction | LM audio positions | ms | vs none |")
    print("|---|---|---|---|")
    for name, ms in times.items():
        print(f"| {name} | {frames[name]} | {ms:.1f} | {ms / times['none']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    with torch.no_grad():
        generation(args.repeat)
    adapter_step(args.repeat)


if __name__ == "__main__":
    main()
