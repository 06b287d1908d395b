"""NeMo ASR models (CTC, RNN-T; char or BPE) -> minispeech CTCModel / TransducerModel.

A `.nemo` file is a tar of `model_config.yaml` and `model_weights.ckpt` (read safely by
`read_checkpoint`; `minispeech.nemo.importer` dispatches ASR classes here). This module
maps its `preprocessor:` section onto `MelSpectrogram` and its `encoder:` section onto
`ConformerEncoder` (config.py fills in NeMo's defaults and refuses what cannot be
mapped), then renames the state-dict keys. Because minispeech keeps NeMo's module names,
the mapping is the identity for the encoder, the prediction network and the joint;
NeMo's CTC head (a 1x1 Conv1d) becomes the CTCModel's linear head, and the
preprocessor's saved window and filterbank are recomputed, not loaded. The result is a
CTCModel or TransducerModel that can transcribe, be fine-tuned with `minispeech train`,
or be saved as a minispeech model file.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from torch import nn

from minispeech.core.checkpoint import load_state_dict_checked
from minispeech.nemo.config import nemo_encoder_kwargs, preprocessor_from_nemo_config

# tensors NeMo saves that minispeech recomputes from the config
RECOMPUTED = ("preprocessor.featurizer.window", "preprocessor.featurizer.fb")


def split_state_dict(state_dict: dict, prefix: str) -> tuple[dict, dict]:
    """Keys under `prefix.` with the prefix removed, and all the other keys."""
    inside, outside = {}, {}
    for key, value in state_dict.items():
        if key.startswith(prefix + "."):
            inside[key[len(prefix) + 1 :]] = value
        else:
            outside[key] = value
    return inside, outside


def map_encoder_state_dict(state_dict: dict) -> dict:
    """NeMo `encoder.*` tensors -> ConformerEncoder state dict (same names)."""
    encoder_sd, _ = split_state_dict(state_dict, "encoder")
    return encoder_sd


def import_asr(ckpt, path) -> nn.Module:
    """A read NeMo ASR checkpoint -> CTCModel or TransducerModel (eval).

    EncDecCTCModel -> CTCModel (NeMo's 1x1-conv head becomes the linear head);
    EncDecRNNTModel -> TransducerModel (same prediction and joint names). Raises
    ValueError naming the file and every unsupported option, and CheckpointError
    listing the keys when the weights do not fit the config.
    """
    cfg = ckpt.config
    for section in ("preprocessor", "encoder"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"{path}: model config has no {section!r} section")
    try:
        kind = nemo_model_kind(cfg)
        ms_cfg = minispeech_config(cfg, kind)
        model = build_model(ms_cfg)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    state = map_state_dict(ckpt.state_dict, kind)
    load_state_dict_checked(model, state, strict=True, source=str(path))
    return model.eval()


def nemo_model_kind(cfg: dict) -> str:
    """ "ctc" or "rnnt", from the saved class path (`target:`), else from the heads."""
    target = str(cfg.get("target", ""))
    name = target.rsplit(".", 1)[-1]
    if "Hybrid" in name or "Multitask" in name:
        raise ValueError(
            f"model class {name} is not supported (CTC and RNN-T, char or BPE, are)"
        )
    if "RNNT" in name or "joint" in cfg:
        return "rnnt"
    if "CTC" in name or "decoder" in cfg:
        return "ctc"
    raise ValueError(f"cannot tell the model type of class {target!r}")


def minispeech_config(cfg: dict, kind: str) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    preprocessor_from_nemo_config(cfg["preprocessor"])  # refuses what it cannot map
    vocabulary = vocabulary_section(cfg)
    encoder = {
        "_target_": "minispeech.nn.ConformerEncoder",
        **nemo_encoder_kwargs(cfg["encoder"]),
    }
    out = {
        **vocabulary,
        "sample_rate": cfg.get("sample_rate", 16000),
        "preprocessor": {
            k: v for k, v in cfg["preprocessor"].items() if k != "_target_"
        },
        "encoder": encoder,
    }
    if kind == "ctc":
        return {
            "_target_": "minispeech.asr.CTCModel",
            **out,
            "ctc_reduction": cfg.get("ctc_reduction", "mean_batch"),
            "strip_space_before_punctuation": True,
        }
    return {
        "_target_": "minispeech.asr.TransducerModel",
        **out,
        **transducer_sections(cfg),
    }


def vocabulary_section(cfg: dict) -> dict:
    """`labels` of a char model, or `tokenizer.dir` holding a BPE model's SentencePiece
    file (read_checkpoint has extracted the `nemo:` artifact to a temporary folder)."""
    tok = cfg.get("tokenizer")
    if tok is None:
        labels = cfg.get("labels") or cfg["decoder"].get("vocabulary")
        if not labels:
            raise ValueError(
                "no labels (char vocabulary) and no tokenizer in the config"
            )
        return {"labels": list(labels)}
    if tok.get("type", "bpe") != "bpe" or not tok.get("model_path"):
        raise ValueError(
            f"tokenizer type {tok.get('type')!r} is not supported "
            "(SentencePiece bpe is)"
        )
    folder = Path(tempfile.mkdtemp(prefix="minispeech-nemo-tokenizer-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    shutil.copyfile(tok["model_path"], folder / "tokenizer.model")
    return {"tokenizer": {"dir": str(folder)}}


def transducer_sections(cfg: dict) -> dict:
    """NeMo's decoder (prednet), joint, loss, decoding -> TransducerModel sections."""
    prednet = dict(cfg["decoder"].get("prednet") or {})
    for key, default in (("t_max", None), ("norm", None)):
        if prednet.pop(key, default) != default:
            raise ValueError(f"decoder.prednet.{key} is not supported")
    if cfg["decoder"].get("random_state_sampling") or cfg["decoder"].get(
        "normalization_mode"
    ):
        raise ValueError(
            "decoder.random_state_sampling / normalization_mode are not supported"
        )
    jointnet = dict(cfg["joint"].get("jointnet") or {})
    loss = cfg.get("loss") or {}
    if loss.get("loss_name", "default") not in ("default", "warprnnt_numba", "pytorch"):
        raise ValueError(
            f"loss.loss_name {loss['loss_name']!r} is not supported (RNN-T only)"
        )
    kwargs = loss.get("warprnnt_numba_kwargs") or {}
    greedy = (cfg.get("decoding") or {}).get("greedy") or {}
    return {
        "decoder": {
            k: prednet[k]
            for k in ("pred_hidden", "pred_rnn_layers", "dropout")
            if k in prednet
        },
        "joint": {
            k: jointnet[k]
            for k in ("joint_hidden", "activation", "dropout")
            if k in jointnet
        },
        "loss": {
            "name": "rnnt",
            "reduction": cfg.get("rnnt_reduction", "mean_batch"),
            "fastemit_lambda": kwargs.get("fastemit_lambda", 0.0),
        },
        "decoding": {
            "strategy": "greedy",
            "max_symbols": greedy.get("max_symbols", 10),
        },
    }


def build_model(ms_cfg: dict):
    from minispeech.asr import CTCModel, TransducerModel

    is_ctc = ms_cfg["_target_"].endswith("CTCModel")
    return (CTCModel if is_ctc else TransducerModel)(ms_cfg)


def map_state_dict(state_dict: dict, kind: str) -> dict:
    """NeMo keys -> minispeech keys; the encoder, prediction and joint keep theirs."""
    out = {}
    for key, value in state_dict.items():
        if key in RECOMPUTED:
            continue
        if kind == "ctc" and key.startswith("decoder.decoder_layers.0."):
            # NeMo's 1x1 Conv1d head becomes a Linear: (V, D, 1) -> (V, D)
            key, value = "head." + key.rsplit(".", 1)[1], value.squeeze(-1)
        if kind == "rnnt" and key.startswith("joint.joint_net.1."):
            key = key.replace("joint_net.1.", "joint_net.2.")  # NeMo omits Dropout(p=0)
        out[key] = value
    return out
