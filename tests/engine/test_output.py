"""The unembedding: the fused path gives the plain linear layer's logits."""

from dataclasses import replace

import pytest
import torch
from transformers import LlamaForCausalLM

from engine import output
from engine.distribution import next_token_logits
from engine.forward import CachedForward, Row
from engine.kvcache import PrefixCache
from engine.loading import LoadedModel
from engine.output import output_logits, reproduces_model_logits, unembed, unembed_choices


@pytest.mark.parametrize("transposed", [True, False], ids=["transposed", "linear"])
@pytest.mark.parametrize("rows", [1, 2, 3, 8, 64, 65])
def test_unembed_is_the_same_product_as_linear(rows, transposed, monkeypatch):
    monkeypatch.setattr(output, "_transposed_is_faster", lambda _weight, _rows: transposed)
    torch.manual_seed(rows)
    weight, hidden = torch.randn(5000, 48), torch.randn(rows, 48)
    ours = unembed(weight, hidden)
    assert ours.shape == (rows, 5000)
    assert torch.allclose(ours, torch.nn.functional.linear(hidden, weight), atol=1e-4, rtol=1e-5)


def test_unembed_times_both_paths_once_per_shape_and_row_bucket(monkeypatch):
    monkeypatch.setattr(output, "_choices", {})
    timed = []
    real = output._seconds
    monkeypatch.setattr(
        output, "_seconds", lambda *args: timed.append(args[2].shape) or real(*args)
    )
    weight = torch.randn(3000, 32)
    for rows in (1, 3, 4, 3, 1):
        unembed(weight, torch.randn(rows, 32))
    assert timed == [(1, 32), (1, 32), (4, 32), (4, 32)]  # each path once per bucket
    assert set(unembed_choices()) == {"3000×32 float32, 1 row", "3000×32 float32, 4 rows"}
    assert set(unembed_choices().values()) <= {"transposed", "linear"}


def test_unembed_carries_gradients_to_the_hidden_states():
    weight, hidden = torch.randn(300, 16), torch.randn(1, 16, requires_grad=True)
    unembed(weight, hidden)[0, 7].backward()
    assert torch.allclose(hidden.grad[0], weight[7])


@pytest.mark.model
def test_the_packaged_models_output_path_is_their_own(any_packaged_model):
    model = any_packaged_model.model
    assert reproduces_model_logits(model, any_packaged_model.device)
    with torch.inference_mode():
        hidden = torch.randn(2, 3, model.config.hidden_size)
        head = model.get_output_embeddings()
        assert torch.allclose(output_logits(model, hidden), head(hidden), atol=1e-4, rtol=1e-5)


class ScaledLlama(LlamaForCausalLM):
    """A model that transforms its logits in a way the fast output path does not know."""

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output.logits = output.logits * 3.0
        return output


@pytest.mark.model
def test_a_model_with_its_own_logit_transform_keeps_its_own_forward(smollm2, tiny_model_dir):
    model = ScaledLlama.from_pretrained(tiny_model_dir).eval()
    info = replace(smollm2.info, n_layers=2, hidden_size=32)
    loaded = LoadedModel(smollm2.spec, model, smollm2.tokenizer, torch.device("cpu"), info)
    assert not reproduces_model_logits(model, loaded.device)
    ids = [1, 504, 3458, 282, 1346, 30]
    cached = CachedForward(model, loaded.device, PrefixCache(1 << 20))
    cached.logits(Row("b", torch.tensor(ids[:-1])))
    ours = cached.logits(Row("b", torch.tensor(ids)))[-1]
    assert torch.allclose(ours, next_token_logits(loaded, ids), atol=1e-5)
