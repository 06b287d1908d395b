"""import_nemo on a SentencePiece (BPE) CTC model in NeMo's layout: the tokenizer is a
`nemo:` artifact referenced from the config, as NeMo's EncDecCTCModelBPE saves it."""

import io
import tarfile

import sentencepiece as spm
import torch
import yaml

from minispeech.asr import CTCModel
from minispeech.data import SentencePieceTokenizer
from minispeech.nemo import import_nemo
from minispeech.nn import ConformerEncoder

TEXTS = ["turn on the light", "call bob at nine", "the red car is in the garden"] * 20


def write_nemo_bpe(path, tokenizer_bytes: bytes, state: dict, d_model: int) -> None:
    config = {
        "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
        "tokenizer": {"dir": None, "type": "bpe",
                      "model_path": "nemo:0a1b_tokenizer.model"},
        "preprocessor": {"_target_": "nemo.collections.asr.modules."
                         "AudioToMelSpectrogramPreprocessor", "features": 40},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder",
                    "feat_in": 40, "n_layers": 1, "d_model": d_model, "n_heads": 2,
                    "conv_kernel_size": 7, "subsampling_factor": 4},
        "decoder": {"feat_in": d_model, "num_classes": -1, "vocabulary": []},
    }  # fmt: skip
    weights = io.BytesIO()
    torch.save(state, weights)
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("./model_config.yaml", yaml.safe_dump(config).encode()),
            ("./model_weights.ckpt", weights.getvalue()),
            ("./0a1b_tokenizer.model", tokenizer_bytes),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bpe_ctc_model_imports_with_its_tokenizer(tmp_path):
    sp_tok = SentencePieceTokenizer.train(TEXTS, tmp_path / "tok", vocab_size=40)
    model_bytes = (tmp_path / "tok" / "tokenizer.model").read_bytes()
    encoder = ConformerEncoder(feat_in=40, n_layers=1, d_model=32, n_heads=2,
                               conv_kernel_size=7)  # fmt: skip
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    n_classes = sp_tok.vocab_size + 1  # pieces + blank (last)
    state["decoder.decoder_layers.0.weight"] = torch.randn(n_classes, 32, 1)
    state["decoder.decoder_layers.0.bias"] = torch.randn(n_classes)
    write_nemo_bpe(tmp_path / "bpe.nemo", model_bytes, state, 32)

    model = import_nemo(tmp_path / "bpe.nemo")
    assert isinstance(model, CTCModel) and model.blank == sp_tok.vocab_size
    assert isinstance(model.tokenizer, SentencePieceTokenizer)
    reference = spm.SentencePieceProcessor(model_proto=model_bytes)
    ids = reference.encode("call the red car")
    assert model.tokenizer.encode("call the red car") == ids
    assert model.tokenizer.decode(ids) == reference.decode(ids)
    assert torch.equal(
        model.head.weight, state["decoder.decoder_layers.0.weight"][..., 0]
    )
    # saved as a minispeech model, the tokenizer travels inside the file
    again = type(model).restore_from(model.save_to(tmp_path / "mine.nemo"))
    wave = [torch.randn(8000) * 0.1]
    assert again.transcribe(wave) == model.eval().transcribe(wave)
