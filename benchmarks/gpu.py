"""Every recipe family on a GPU in fp32, bf16-mixed and 16-mixed: steps per second,
peak memory and model FLOPs utilization (MFU), through the training loop itself.

First the CUDA tests (`tests/test_gpu.py`, skipped on a CPU machine) run. Then, for each
recipe and precision, `train(cfg)` (the one loop: autocast, the GradScaler of 16-mixed,
clipping, the recipe's own data and batches) runs --steps steps with validation off,
logging every step; steps per second come from the run's metrics.jsonl, leaving out the
first --warmup steps (cuDNN autotuning, allocator growth). Peak memory is
torch.cuda.max_memory_allocated over the run.

MFU as nanoGPT's `estimate_mfu` defines it (after Chowdhery et al. 2022, "PaLM",
arXiv:2204.02311, Appendix B): achieved FLOP/s over the device's peak. The FLOPs of a
step are 3x the forward FLOPs of one training batch (forward + backward), counted by
torch.utils.flop_counter (matmuls, convolutions, attention; elementwise work and
LSTMs are not counted, so the masking model's BLSTM shows almost none); the peak is
the datasheet's dense figure for the precision: fp32 without tensor cores, bf16/fp16
with them (`--peak-tflops FP32,HALF` for a GPU not in the
table). A GAN vocoder (two optimizers) gets no MFU: its step is not one forward pass.

    python benchmarks/gpu.py                       # every recipe, 3 precisions
    python benchmarks/gpu.py --only ctc --steps 30 --precision 32 bf16-mixed
    python benchmarks/gpu.py --device cpu --only ctc --steps 4 --warmup 1 --precision 32

The last is the script's own smoke test on a CPU. Expected on one H200: a few minutes
for all recipes (tiny models: the GPU is mostly idle; throughput is bounded by the
data path and kernel launches, and MFU is small).
The SpeechLM stage needs the main job's and the LM's model files, so it is left out.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import RECIPES, REPO
from torch.utils.flop_counter import FlopCounterMode

from minispeech.core.config import load_recipe
from minispeech.core.model import SpeechModel
from minispeech.training.loaders import epoch_loader, to_device
from minispeech.training.loop import train

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
# datasheet dense peaks in TFLOP/s: (fp32 without tensor cores, bf16/fp16 tensor cores)
PEAK_TFLOPS = {
    "H200": (67.0, 989.0),
    "H100": (67.0, 989.0),  # SXM; the PCIe card is lower (51, 756)
    "A100": (19.5, 312.0),
    "L40S": (91.6, 362.0),
    "L4": (30.3, 121.0),
    "A10": (31.2, 125.0),
    "T4": (8.1, 65.0),
}


def peak_tflops(device: torch.device, override: str | None) -> tuple | None:
    """(fp32, half) peak TFLOP/s: --peak-tflops, else the table by the GPU's name."""
    if override:
        fp32, half = (float(x) for x in override.split(","))
        return fp32, half
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peaks for key, peaks in PEAK_TFLOPS.items() if key in name), None)


def step_flops(cfg: dict, device: torch.device) -> float | None:
    """3x the forward FLOPs of the recipe's first training batch (None for a model
    with several optimizers)."""
    model = SpeechModel.from_config(cfg["model"]).to(device).train()
    if getattr(model, "manual_optimization", False):
        return None
    train_cfg = model.cfg.get("train_ds") or {}
    dataset = model.build_dataset(train_cfg)
    sampler = model.build_sampler(train_cfg, dataset, 1, 0, 1234)
    batch = to_device(
        next(iter(epoch_loader(model, dataset, sampler, train_cfg, 0, 1))), device
    )
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.training_step(batch)
    return 3.0 * counter.get_total_flops()


def run_recipe(name: str, precision: str, args) -> dict:
    """One short training run: steps/s (after warm-up) and peak memory in GiB."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_recipe(
            REPO / RECIPES[name],
            REPO,
            tmp,
            max_steps=args.steps,
            val_check_interval=10**9,  # no validation inside the timed run
            log_every_n_steps=1,
            precision=precision,
            accelerator="gpu" if args.device == "cuda" else "cpu",
        )
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        train(cfg)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else 0
        log = Path(tmp) / cfg["exp_manager"]["name"] / "metrics.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()]
    times = {r["step"]: r["elapsed"] for r in rows if "loss" in r and "elapsed" in r}
    first, last = args.warmup, max(times)
    if first not in times or last <= first:
        raise SystemExit(f"{name}: too few logged steps; raise --steps")
    return {"steps_s": (last - first) / (times[last] - times[first]), "peak_gib": peak}


def run_gpu_tests() -> None:
    print("CUDA tests (tests/test_gpu.py):", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-q", str(REPO / "tests/test_gpu.py")]
    subprocess.run(cmd, cwd=REPO, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=RECIPES, action="append")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, dest="precisions")
    parser.add_argument("--steps", type=int, default=40, help="steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--peak-tflops", help="FP32,HALF dense peaks (TFLOP/s)")
    parser.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this benchmark is for a GPU machine")
    if not args.no_tests:
        run_gpu_tests()
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(device) if args.device == "cuda" else "CPU"
    peaks = peak_tflops(device, args.peak_tflops)
    print(
        f"\n{label}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; "
        f"{args.steps} steps a run, the first {args.warmup} untimed; peak TFLOP/s "
        f"(fp32, half): {peaks or 'unknown: MFU not computed'}"
    )
    print(
        "| recipe | precision | steps/s | vs fp32 | peak memory | TFLOP/s | MFU |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    for name in args.only or RECIPES:
        cfg = load_recipe(REPO / RECIPES[name], REPO, tempfile.gettempdir())
        flops = step_flops(cfg, device)
        base = None
        for precision in args.precisions or PRECISIONS:
            if precision == "bf16-mixed" and device.type == "cuda":
                if not torch.cuda.is_bf16_supported():
                    print(f"| {name} | {precision} | no bfloat16 on this GPU |")
                    continue
            result = run_recipe(name, precision, args)
            base = base or (result["steps_s"] if precision == "32" else None)
            ratio = f"{result['steps_s'] / base:.2f}x" if base else "-"
            achieved = flops * result["steps_s"] / 1e12 if flops else None
            peak = None if peaks is None else peaks[0 if precision == "32" else 1]
            mfu = f"{100 * achieved / peak:.2f}%" if achieved and peak else "-"
            tflops = f"{achieved:.2f}" if achieved else "-"
            print(
                f"| {name} | {precision} | {result['steps_s']:.2f} | {ratio} "
                f"| {result['peak_gib']:.2f} GiB | {tflops} | {mfu} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
