"""RNN-T loss speed and memory: minispeech's rnnt_loss against the log-softmax floor.

Any RNN-T loss on raw logits must at least normalize them, so the floor is one
log_softmax forward + backward over the same (B,T,U+1,V) logits. Time: median wall time
of forward + backward (float32, CPU, full lengths, random labels); target <= 2x the
floor.

Memory: peak bytes of tensor storage allocated during forward + backward beyond the
input logits (the returned gradient included), target <= 1x the logits. PyTorch has no
peak counter for its CPU allocator, so a TorchDispatchMode sees every op, records each
new output storage once (by data pointer) and a weakref finalizer frees it; the peak of
the running sum is the number reported. Views and in-place results add nothing.

    python benchmarks/rnnt.py [--threads 2] [--repeats 7] [--torchaudio]

Measured on the shared 2-core CPU box (load average 3-4 from other jobs), ours/floor:
1 thread 0.85x (B8,T100,U30,V129) and 0.73x (B8,T200,U50,V257); 2 threads 2.29x and
1.95x, where every op large enough to run on two threads waits for the busy second core
(the floor has 3 such ops, the loss about 20). Peak memory 1.08x and 1.04x the logits,
i.e. 0.08x and 0.04x beyond the returned gradient (the floor: 2.00x).
"""

import argparse
import weakref
from functools import partial

import torch
from common import median_ms
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from minispeech.asr.rnnt import rnnt_loss

# (B, T, U, V): U labels, so the lattice is T x (U+1); V includes blank
SHAPES = [(8, 100, 30, 129), (8, 200, 50, 257)]


def floor_fn(logits, targets, logit_lens, target_lens):
    """The floor: log_softmax forward + backward (gradient of the sum)."""
    return logits.log_softmax(-1).sum()


def ours_fn(logits, targets, logit_lens, target_lens):
    return rnnt_loss(logits, targets, logit_lens, target_lens, reduction="sum")


def torchaudio_fn(logits, targets, logit_lens, target_lens):
    import torchaudio.functional as taf  # optional; not a dependency

    return taf.rnnt_loss(
        logits, targets.int(), logit_lens.int(), target_lens.int(), reduction="sum"
    )


def fwd_bwd(fn, logits, *rest):
    x = logits.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x, *rest), x)
    return grad


class PeakStorage(TorchDispatchMode):
    """Live bytes of the storages that ops create under this mode, and their peak.

    A storage counts from the first op output that uses it until the last such output
    tensor is garbage collected; storages of `external` tensors (inputs) never count.
    """

    def __init__(self, external=()):
        super().__init__()
        self.external = {t.untyped_storage().data_ptr() for t in external}
        self.live, self.peak, self.refs = 0, 0, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t)
        return out

    def _track(self, tensor):
        storage = tensor.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if key in self.external or nbytes == 0:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        self.refs[key] += 1
        weakref.finalize(tensor, self._release, key, nbytes)

    def _release(self, key, nbytes):
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.live -= nbytes


def peak_extra_bytes(fn, inputs):
    with PeakStorage(external=inputs) as mode:
        grad = fwd_bwd(fn, *inputs)
        del grad
    return mode.peak


def make_inputs(n_batch, n_frames, n_labels, n_vocab):
    logits = torch.randn(n_batch, n_frames, n_labels + 1, n_vocab)  # (B,T,U+1,V)
    targets = torch.randint(1, n_vocab, (n_batch, n_labels))  # (B,U), blank 0
    logit_lens = torch.full((n_batch,), n_frames)
    target_lens = torch.full((n_batch,), n_labels)
    return logits, targets, logit_lens, target_lens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--torchaudio", action="store_true", help="also time torchaudio"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fns = {"floor": floor_fn, "ours": ours_fn}
    if args.torchaudio:
        fns["torchaudio"] = torchaudio_fn
    print(
        f"RNN-T loss fwd+bwd, float32, CPU, {args.threads} threads, "
        f"median of {args.repeats}"
    )
    names = " | ".join(f"{n} ms" for n in fns)
    print(
        f"| B | T | U | V | {names} | ours/floor "
        "| peak mem floor | ours | ours - grad |"
    )
    print("|---" * (len(fns) + 8) + "|")
    for shape in SHAPES:
        inputs = make_inputs(*shape)
        runs = {name: partial(fwd_bwd, fn, *inputs) for name, fn in fns.items()}
        ms = median_ms(runs, args.repeats)
        logit_bytes = inputs[0].nbytes
        mem = {
            n: peak_extra_bytes(fns[n], inputs) / logit_bytes for n in ("floor", "ours")
        }
        cells = " | ".join(f"{v:.1f}" for v in ms.values())
        print(
            f"| {' | '.join(map(str, shape))} | {cells} "
            f"| {ms['ours'] / ms['floor']:.2f}x "
            f"| {mem['floor']:.2f}x | {mem['ours']:.2f}x | {mem['ours'] - 1:.2f}x |"
        )
    print(
        "memory: peak bytes allocated beyond the input logits, in units of the logits;"
    )
    print("'ours - grad' leaves out the returned gradient (1x): any loss returns one")


if __name__ == "__main__":
    main()
