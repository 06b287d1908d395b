"""NeMo's multitask AED (Canary, EncDecMultiTaskModel) -> minispeech AEDModel.

The `.nemo` file (read safely by `read_checkpoint`) holds the aggregate tokenizer as
SentencePiece artifacts (`tokenizer.langs.<name>.model_path`), copied here into one
folder as `spl_tokens.model` and `<lang>.model` (aed_tokenizer.py's layout). The
preprocessor and FastConformer encoder map as for the CTC and RNN-T models (asr.py,
config.py); NeMo's Transformer decoder maps onto `TransformerDecoder` with NeMo's
embedding (`xscaling: false`: E + PE / sqrt(D); `embedding_norm: true`) and a head tied
to the embedding when NeMo saved the same matrix under both keys. The fixed position
table NeMo saves (`pos_enc`) is checked against minispeech's and not loaded.
Refused by name: prompt formats other than canary, a Transformer encoder after the
Conformer (`transf_encoder.num_layers` > 0), learned or typed positions, post-LN or
non-ReLU decoders, a head with more than one layer.
Differs from NeMo: one decoder dropout (`ffn_dropout`) and one attention dropout
(`attn_score_dropout`) replace NeMo's four rates; they matter only when fine-tuning.
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
from pathlib import Path

import torch

from minispeech.core.checkpoint import load_state_dict_checked
from minispeech.nemo.asr import RECOMPUTED
from minispeech.nemo.config import nemo_encoder_kwargs, preprocessor_from_nemo_config
from minispeech.nn.positional import sinusoid_table

DECODER = "transf_decoder._decoder."
EMBEDDING = "transf_decoder._embedding."
POS_ENC = EMBEDDING + "position_embedding.pos_enc"
HEAD = "log_softmax.mlp.layer0."
# NeMo decoder-layer names -> TransformerDecoderLayer names
LAYER_NAMES = {
    "layer_norm_1.": "norm_self_att.",
    "first_sub_layer.": "self_attn.",
    "layer_norm_2.": "norm_cross_att.",
    "second_sub_layer.": "cross_attn.",
    "layer_norm_3.": "norm_feed_forward.",
    "third_sub_layer.": "feed_forward.",
    "query_net.": "linear_q.",
    "key_net.": "linear_k.",
    "value_net.": "linear_v.",
    "out_projection.": "linear_out.",
    "dense_in.": "linear1.",
    "dense_out.": "linear2.",
}
# everything else: NeMo prefix -> minispeech prefix
PREFIXES = {
    EMBEDDING + "token_embedding.": "decoder.embedding.",
    EMBEDDING + "layer_norm.": "decoder.embedding_norm.",
    DECODER + "final_layer_norm.": "decoder.norm_out.",
    HEAD: "decoder.output.",
    "encoder_decoder_proj.": "projection.",
    "encoder.": "encoder.",
}


def import_aed(ckpt, path):
    """A read NeMo EncDecMultiTaskModel checkpoint -> AEDModel (eval). Raises
    ValueError naming every unsupported option, CheckpointError for weights."""
    from minispeech.asr.aed_model import AEDModel

    try:
        model = AEDModel(aed_config(ckpt.config, ckpt.state_dict))
        check_head(ckpt.config.get("head") or {}, model.num_classes)
        state = map_aed_state_dict(ckpt.state_dict)
    except KeyError as error:
        raise ValueError(f"{path}: model config: missing key {error}") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    load_state_dict_checked(model, state, strict=True, source=str(path))
    return model.eval()


def aed_config(cfg: dict, state_dict: dict) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    for section in ("preprocessor", "encoder", "transf_decoder", "tokenizer"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"model config has no {section!r} section")
    if cfg.get("prompt_format", "canary") != "canary":
        raise ValueError(
            f"prompt_format {cfg['prompt_format']!r} is not supported (canary is)"
        )
    if int((cfg.get("transf_encoder") or {}).get("num_layers", 0)) > 0:
        raise ValueError("transf_encoder.num_layers > 0 is not supported (0 is)")
    preprocessor_from_nemo_config(cfg["preprocessor"])  # refuses what it cannot map
    emb_key = EMBEDDING + "token_embedding.weight"
    tied = emb_key in state_dict and torch.equal(
        state_dict[emb_key], state_dict.get(HEAD + "weight", torch.empty(0))
    )
    strategy = (cfg.get("decoding") or {}).get("strategy", "beam")
    decoding = (cfg.get("decoding") or {}).get(strategy) or {}  # beam or greedy
    loss = cfg.get("loss") or {}
    return {
        "_target_": "minispeech.asr.AEDModel",
        "tokenizer": tokenizer_section(cfg["tokenizer"]),
        "sample_rate": cfg.get("sample_rate", 16000),
        "preprocessor": {
            k: v for k, v in cfg["preprocessor"].items() if k != "_target_"
        },
        "encoder": {
            "_target_": "minispeech.nn.ConformerEncoder",
            **nemo_encoder_kwargs(cfg["encoder"]),
        },
        "decoder": decoder_section(cfg["transf_decoder"], tied),
        "loss": {"label_smoothing": float(loss.get("label_smoothing", 0.0))},
        "decoding": {
            "beam_size": int(decoding.get("beam_size", 1)) if strategy == "beam" else 1,
            "length_penalty": float(decoding.get("len_pen", 0.0)),
            "max_generation_delta": int(decoding.get("max_generation_delta", -1)),
        },
    }


def tokenizer_section(tok: dict) -> dict:
    """An `agg` tokenizer of SentencePiece models, `spl_tokens` first -> {dir, langs}
    with the models copied into one temporary folder (removed at exit)."""
    langs = tok.get("langs") or {}
    names = list(langs)
    if tok.get("type") != "agg" or not names or names[0] != "spl_tokens":
        raise ValueError(
            f"tokenizer type {tok.get('type')!r} with langs {names} is not supported "
            "(an agg tokenizer whose first model is spl_tokens is)"
        )
    folder = Path(tempfile.mkdtemp(prefix="minispeech-nemo-aed-tokenizer-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name, sub in langs.items():
        if sub.get("type", "bpe") != "bpe" or not sub.get("model_path"):
            raise ValueError(
                f"tokenizer.langs.{name}: type {sub.get('type')!r} without a "
                "SentencePiece model_path is not supported"
            )
        shutil.copyfile(sub["model_path"], folder / f"{name}.model")
    return {"dir": str(folder), "langs": names[1:]}


def decoder_section(section: dict, tied: bool) -> dict:
    """`transf_decoder` (get_nemo_transformer) -> TransformerDecoder arguments."""
    cfg = section.get("config_dict") or {}
    refused = {
        "pre_ln": (cfg.get("pre_ln", True), True),
        "pre_ln_final_layer_norm": (section.get("pre_ln_final_layer_norm", True), True),
        "hidden_act": (cfg.get("hidden_act", "relu"), "relu"),
        "num_token_types": (cfg.get("num_token_types", 0), 0),
        "learn_positional_encodings": (
            cfg.get("learn_positional_encodings", False),
            False,
        ),
        "pretrained": (section.get("pretrained", False), False),
    }
    problems = [f"{k}={v!r} (only {ok!r})" for k, (v, ok) in refused.items() if v != ok]
    hidden, inner = int(cfg["hidden_size"]), int(cfg["inner_size"])
    if inner % hidden:
        problems.append(f"inner_size={inner} (a multiple of hidden_size {hidden})")
    if problems:
        raise ValueError("transf_decoder: unsupported options: " + "; ".join(problems))
    return {
        "d_model": hidden,
        "n_layers": int(cfg["num_layers"]),
        "n_heads": int(cfg["num_attention_heads"]),
        "ff_expansion_factor": inner // hidden,
        "max_len": int(cfg.get("max_sequence_length", 512)),
        "dropout": float(cfg.get("ffn_dropout", 0.0)),
        "dropout_att": float(cfg.get("attn_score_dropout", 0.0)),
        "xscaling": False,
        "embedding_norm": True,
        "tie_embedding": tied,
    }


def check_head(head: dict, num_classes: int) -> None:
    """The TokenClassifier head must be one Linear + log-softmax over the padded
    vocabulary."""
    layers, log_softmax = head.get("num_layers", 1), head.get("log_softmax", True)
    classes = head.get("num_classes", num_classes)
    if layers != 1 or not log_softmax or classes != num_classes:
        raise ValueError(
            f"head: num_layers={layers}, log_softmax={log_softmax}, "
            f"num_classes={classes} is not supported (1, true, {num_classes}: the "
            "tokenizer's vocabulary padded to a multiple of 8)"
        )


def map_aed_state_dict(state_dict: dict) -> dict:
    """NeMo keys -> AEDModel keys; NeMo's saved position table is checked against the
    one minispeech computes, not loaded."""
    out = {}
    for key, value in state_dict.items():
        if key in RECOMPUTED:
            continue
        if key == POS_ENC:
            check_positions(value)
            continue
        out[map_key(key)] = value
    return out


def map_key(key: str) -> str:
    if key.startswith(DECODER + "layers."):
        rest = "decoder." + key[len(DECODER) :]
        for nemo, ours in LAYER_NAMES.items():
            rest = rest.replace("." + nemo, "." + ours)
        return rest
    for nemo, ours in PREFIXES.items():
        if key.startswith(nemo):
            return ours + key[len(nemo) :]
    return key  # an unknown key: load_state_dict_checked names it


def check_positions(table: torch.Tensor) -> None:
    """NeMo's (max_len, D) table must be the sinusoids / sqrt(D) minispeech adds."""
    n_positions, d_model = table.shape
    ours = sinusoid_table(torch.arange(n_positions), d_model) / math.sqrt(d_model)
    if (ours - table).abs().max() > 1e-5:
        raise ValueError(f"{POS_ENC}: not the sinusoid table / sqrt(D) minispeech uses")
