"""CTC loss speed: minispeech's ctc_loss vs torch.nn.functional.ctc_loss on CPU.

Forward + backward of the "mean" loss on log-softmax outputs, float32, random labels;
prints the median of several runs per shape and the ratio ours / torch (target <= 2x).

    python benchmarks/ctc.py [--threads 2] [--repeats 7] [--reference]
"""

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from common import median_ms

from minispeech.nn.ctc import ctc_loss, ctc_loss_reference

# (B, T, V, U): 16 utterances of 250 encoder frames (10 s at 40 ms), 40 labels
SHAPES = [(16, 250, 129, 40), (16, 250, 1025, 40)]


def _torch_ctc(log_probs, targets, input_lens, target_lens):
    return F.ctc_loss(log_probs.transpose(0, 1), targets, input_lens, target_lens)


def fwd_bwd(loss_fn, logits, targets, input_lens, target_lens) -> None:
    """The loss of log_softmax(logits) and its backward: what a training step pays."""
    x = logits.detach().requires_grad_(True)
    loss_fn(x.log_softmax(-1), targets, input_lens, target_lens).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference", action="store_true", help="also time the loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fns = {"torch": _torch_ctc, "ours": ctc_loss}
    if args.reference:
        fns["reference"] = ctc_loss_reference
    print(f"CTC loss fwd+bwd, CPU, {args.threads} threads, median of {args.repeats}")
    print("| B | T | V | U | " + " | ".join(f"{n} ms" for n in fns) + " | ours/torch |")
    print("|---" * (len(fns) + 5) + "|")
    for n_batch, n_frames, n_vocab, n_labels in SHAPES:
        logits = torch.randn(n_batch, n_frames, n_vocab)  # (B,T,V)
        targets = torch.randint(1, n_vocab, (n_batch, n_labels))  # (B,U), blank 0
        input_lens = torch.full((n_batch,), n_frames)
        target_lens = torch.full((n_batch,), n_labels)
        inputs = (logits, targets, input_lens, target_lens)
        runs = {name: partial(fwd_bwd, fn, *inputs) for name, fn in fns.items()}
        ms = median_ms(runs, args.repeats)
        cells = " | ".join(f"{v:.1f}" for v in ms.values())
        print(
            f"| {n_batch} | {n_frames} | {n_vocab} | {n_labels} | {cells} "
            f"| {ms['ours'] / ms['torch']:.2f}x |"
        )


if __name__ == "__main__":
    main()
