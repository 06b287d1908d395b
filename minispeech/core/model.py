"""SpeechModel: the base class of every task model (ASR, TTS, speaker, ...).

A model is built from its `model:` config section alone (`MyModel(cfg)`), so a model
file that stores that section (`model_config.yaml`) can rebuild it, as in NeMo's ModelPT
and whisper's `Whisper(dims)`. The training loop (`minispeech/training/loop.py`) only
talks to this interface; a subclass writes:

  __init__(cfg)           call `super().__init__(cfg)`, then build modules from `cfg`
                          (sub-modules with `instantiate(cfg["encoder"])`)
  forward(...)            the computation, with shape comments
  training_step(batch)    -> {"loss": scalar Tensor, ...more scalars to log}
  validation_step(batch)  -> {"name": number or list}: numbers are sums over the batch
                             (errors, words, loss_sum, count), which the loop adds over
                             batches and ranks; lists (per-trial scores, labels) are
                             concatenated over batches, then over ranks in rank order
  validation_metrics(stats) -> {"val_wer": errors / words, ...} from those totals
  configure_optimizers(max_steps) -> (optimizer, scheduler or None); several optimizers
                          (a GAN): ([opt_g, opt_d], [sched_g, None]) with
                          `manual_optimization = True` and
                          `training_step(batch, optimizers)`, which calls
                          `opt.backward(loss)` then `opt.step()` for each (the loop
                          still scales, accumulates, clips and skips; see
                          training/optimizers.py)
  build_dataset(ds_cfg)   a Dataset for `train_ds` / `validation_ds`; give it a
                          `durations` list so the bucketing sampler can group lengths
  evaluation_dataset(m)   (optional) the Dataset `minispeech evaluate MODEL m` scores
                          with validation_step; default: build_dataset of test_ds
                          or validation_ds with manifest_filepath m
  collate(items)          -> batch dict; include "ids" (utterance ids) so a non-finite
                          loss can be reported with the utterances that caused it

Artifacts (files the weights depend on, such as a tokenizer folder) are registered by
config key in `__init__`: `tok_dir = self.register_artifact("tokenizer.dir")`. `save_to`
copies each registered file or flat folder into the model file and writes the config
value as `nemo:<member>`; `restore_from` extracts the member and rewrites the value back
to the extracted path before `__init__` runs, so `__init__` always sees a real path.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minispeech.core.checkpoint import (
    ARTIFACT_PREFIX,
    CONFIG_NAME,
    CheckpointError,
    building_from,
    load_state_dict_checked,
    read_checkpoint,
    save_checkpoint,
)
from minispeech.core.config import ConfigError, get_dotted, locate, set_dotted

# dataset keys `evaluation_dataset` drops: filters, row picks, augmentation, batching
NOT_EVALUATED = (
    "rows",
    "min_duration",
    "max_duration",
    "augmentor",
    "batch_size",
    "max_seconds",
    "shuffle",
    "drop_last",
    "num_buckets",
)


class SpeechModel(nn.Module):
    """Base class: config in; steps, data and optimizer for the loop; save/restore."""

    # True: training_step(batch, optimizers) steps its optimizers itself (module doc)
    manual_optimization = False

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)  # the `model:` section, `_target_` included
        self.cfg.setdefault(
            "_target_", f"{type(self).__module__}.{type(self).__qualname__}"
        )
        self._artifacts: dict[str, Path] = {}  # dotted config key -> file or folder

    def section(self, name: str) -> dict:
        """A config section's values without `_target_` ({} when absent)."""
        values = self.cfg.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"model.{name}: must be a mapping of keys")
        return {k: v for k, v in values.items() if k != "_target_"}

    # ------------------------------------------------------------ the steps (subclass)

    def training_step(self, batch: dict) -> dict:
        """Return {"loss": scalar Tensor, ...}; the loop calls backward on "loss"."""
        raise NotImplementedError(f"{type(self).__name__} must define training_step")

    def validation_step(self, batch: dict) -> dict:
        """Summable numbers for one batch (called under torch.no_grad, eval mode)."""
        raise NotImplementedError(f"{type(self).__name__} must define validation_step")

    def validation_metrics(self, stats: dict) -> dict:
        """Metrics from the totals; default: every summed number / stats["count"].
        List stats need a metric of their own (an EER over the scores) and are
        skipped here."""
        count = float(stats.get("count", 1.0)) or 1.0
        return {
            f"val_{k}": float(v) / count
            for k, v in stats.items()
            if k != "count" and not isinstance(v, list)
        }

    def on_train_end(self) -> None:
        """Called once after the last step, before the model file is written (on
        the main process): a place to fit what is not learned by gradient steps."""

    # ------------------------------------------------------------ data (subclass)

    def build_dataset(self, ds_cfg: dict) -> torch.utils.data.Dataset:
        """A Dataset for one `train_ds` / `validation_ds` section."""
        raise NotImplementedError(f"{type(self).__name__} must define build_dataset")

    def evaluation_dataset(self, manifest: str | Path) -> torch.utils.data.Dataset:
        """The Dataset `minispeech evaluate` scores with `validation_step`:
        `build_dataset` of the `test_ds` (else `validation_ds`) section with
        `manifest` as its manifest_filepath, minus the keys that would change what
        is scored (duration filters, augmentation) or how it is batched."""
        base = self.cfg.get("test_ds") or self.cfg.get("validation_ds") or {}
        ds_cfg = {k: v for k, v in base.items() if k not in NOT_EVALUATED}
        return self.build_dataset({**ds_cfg, "manifest_filepath": str(manifest)})

    def collate(self, items: list) -> dict:
        """Stack dataset items into a batch dict (default: torch's default_collate)."""
        return torch.utils.data.default_collate(items)

    def build_sampler(
        self, ds_cfg: dict, dataset: Any, num_replicas: int, rank: int, seed: int
    ) -> Any:
        """Batches of indices: the bucketing sampler, one shard per DDP rank."""
        from minispeech.data.sampler import BucketingBatchSampler

        durations = getattr(dataset, "durations", None)
        if durations is None:  # no durations: every item counts the same
            durations = [1.0] * len(dataset)
        return BucketingBatchSampler(
            durations,
            batch_size=ds_cfg.get("batch_size"),
            max_seconds=ds_cfg.get("max_seconds"),
            shuffle=ds_cfg.get("shuffle", True),
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=ds_cfg.get("drop_last", False),
            num_buckets=ds_cfg.get("num_buckets", 10),
        )

    # ------------------------------------------------------------ optimization

    def configure_optimizers(self, max_steps: int):
        """(optimizer, scheduler or None) from `optim`; see minispeech/core/optim.py.
        A manual-optimization model may return ([optimizers], [schedulers or None])."""
        from minispeech.core.optim import build_optimizer, build_scheduler

        optim_cfg = dict(self.cfg.get("optim") or {})
        sched_cfg = optim_cfg.pop("sched", None)
        optimizer = build_optimizer(self.parameters(), optim_cfg)
        return optimizer, build_scheduler(optimizer, sched_cfg, max_steps)

    # ------------------------------------------------------------ artifacts and files

    def register_artifact(self, key: str) -> Path:
        """Declare that config value `key` (dotted, e.g. "tokenizer.dir") is a file or a
        flat folder to store in the model file. Returns it as a Path."""
        try:
            value = get_dotted(self.cfg, key)
        except KeyError:
            name = type(self).__name__
            raise ConfigError(f"{name}: artifact key {key!r} not in config") from None
        path = Path(str(value))
        if str(value).startswith(ARTIFACT_PREFIX) or not path.exists():
            raise ConfigError(
                f"{type(self).__name__}: artifact {key}={value!r} does not exist"
            )
        self._artifacts[key] = path.resolve()
        set_dotted(self.cfg, key, str(self._artifacts[key]))
        return self._artifacts[key]

    def save_to(self, path: str | Path) -> Path:
        """Write the model file (config, weights, artifacts) atomically."""
        config = copy.deepcopy(self.cfg)
        artifacts: dict[str, Path] = {}
        for key, source in sorted(self._artifacts.items()):
            member = source.name
            if member in artifacts or member in (
                "model_config.yaml",
                "model_weights.ckpt",
            ):
                member = f"{key}.{source.name}"  # two artifacts with one basename
            artifacts[member] = source
            set_dotted(config, key, ARTIFACT_PREFIX + member)
        return save_checkpoint(path, config, self.state_dict(), artifacts)

    @classmethod
    def restore_from(
        cls,
        path: str | Path,
        map_location: Any = "cpu",
        strict: bool = True,
        trust_targets: bool = False,
    ) -> "SpeechModel":
        """Rebuild a model from a `save_to` file (the file names the class)."""
        model = restore_from(
            path, map_location, strict=strict, trust_targets=trust_targets
        )
        if not isinstance(model, cls):
            raise CheckpointError(
                f"{path}: holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model

    @classmethod
    def from_config(cls, cfg: dict, *, trust_targets: bool = False) -> "SpeechModel":
        """Build the class named by `cfg["_target_"]` (minispeech.* unless trusted)."""
        if "_target_" not in cfg:
            raise ConfigError("model config needs a _target_ naming the model class")
        target = locate(cfg["_target_"], trust_targets=trust_targets)
        if not (isinstance(target, type) and issubclass(target, cls)):
            raise ConfigError(
                f"model _target_ {cfg['_target_']!r} is not a {cls.__name__}"
            )
        return target(cfg)

    def load_inputs(self, inputs) -> list[torch.Tensor]:
        """Paths or 1-D waveforms -> mono float32 waves (S,) at `self.sample_rate`."""
        from minispeech.audio.io import load_audio

        waves = []
        for item in inputs:
            if isinstance(item, (str, Path)):
                item = load_audio(item, sample_rate=self.sample_rate)[0]
            item = torch.as_tensor(item, dtype=torch.float32)
            assert item.dim() == 1, f"a waveform must be (S,), got {tuple(item.shape)}"
            waves.append(item)
        return waves

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (elements), optionally only those with requires_grad."""
        return sum(
            p.numel()
            for p in self.parameters()
            if p.requires_grad or not trainable_only
        )


def restore_from(
    path: str | Path,
    map_location: Any = "cpu",
    strict: bool = True,
    trust_targets: bool = False,
):
    """Rebuild a SpeechModel from a model file: `_target_` class, then weights."""
    checkpoint = read_checkpoint(path, map_location=map_location)
    target = checkpoint.config.get("_target_")
    if target is None:
        nemo = checkpoint.config.get("target", "")
        hint = f" (a NeMo model, {nemo}: use minispeech.import_nemo)" if nemo else ""
        raise CheckpointError(f"{path}: {CONFIG_NAME} has no _target_{hint}")
    try:
        cls = locate(target, trust_targets=trust_targets)
    except ConfigError as error:
        raise CheckpointError(f"{path}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, SpeechModel)):
        raise CheckpointError(
            f"{path}: _target_ {target!r} is not a SpeechModel subclass"
        )
    with building_from(path):
        model = cls(checkpoint.config)
    load_state_dict_checked(
        model, checkpoint.state_dict, strict=strict, source=str(path)
    )
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model
