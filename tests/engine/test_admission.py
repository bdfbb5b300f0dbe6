"""Admitting a model at run time (engine.admission): a tiny GPT-2 folder is admitted with its
card; every way a reference can be wrong is a ModelLoadError that names the cause."""

import json

import pytest
import torch

from engine.admission import admit
from engine.catalog import spec_for
from engine.types import ModelLoadError

CPU = torch.device("cpu")


def _admit(reference):
    return admit(spec_for(str(reference)), CPU)


def test_a_gpt2_folder_is_admitted_with_its_card_and_stages(tiny_gpt2_dir):
    stages = []
    loaded = admit(spec_for(str(tiny_gpt2_dir)), CPU, stages.append)
    assert loaded.info.architecture == "GPT2LMHeadModel"
    assert (loaded.info.n_layers, loaded.info.context_length) == (2, 64)
    assert stages == [
        f"Looking for {tiny_gpt2_dir}",
        "Reading the configuration of tiny-gpt2",
        "Loading the tokenizer of tiny-gpt2",
        "Loading the weights of tiny-gpt2",
        "Checking that every analysis can read tiny-gpt2",
    ]


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=f"The folder {tmp_path}/nowhere does not exist"):
        _admit(tmp_path / "nowhere")


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder"):
        _admit(tmp_path / "weights.bin")


def test_a_folder_without_a_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="holds no config.json"):
        _admit(tmp_path)


def test_an_unknown_model_type_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-family"}))
    with pytest.raises(ModelLoadError, match="Could not read the configuration.*no-such-family"):
        _admit(tmp_path)


def test_an_encoder_is_refused_as_not_causal(tmp_path):
    from transformers import BertConfig

    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    config.architectures = ["BertForMaskedLM"]
    config.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="is a BertForMaskedLM, not a causal language model"):
        _admit(tmp_path)


def test_a_folder_without_weights_says_so(tiny_gpt2_dir, tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_gpt2_dir / name).read_bytes())
    with pytest.raises(ModelLoadError, match="Could not load the weights"):
        _admit(tmp_path)


def test_a_hub_id_with_the_hub_switched_off_names_the_setting(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"hub is switched off here \(HF_HUB_OFFLINE\)"):
        _admit("tokenlens-tests/no-such-model")


def test_an_unreachable_hub_is_named_without_waiting_for_retries(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelLoadError, match=r"hub \(http://127.0.0.1:9\) cannot be reached"):
        _admit("tokenlens-tests/no-such-model")
