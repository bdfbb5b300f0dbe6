"""Attention maps: rows are distributions, causal, equal to transformers' own output_attentions,
and packed compactly."""

import re

import pytest
import torch

from engine.attention import LayerInputCache, attention_for, pack, unpack
from engine.distribution import prompt_ids
from engine.types import InputError

TEXT = "The quick brown fox jumps over the lazy dog because it was late for dinner."


@pytest.mark.parametrize("encoding", ["float16", "uint8"])
def test_rows_sum_to_one_and_nothing_attends_to_the_future(any_packaged_model, encoding):
    info = any_packaged_model.info
    layers = [0, info.n_layers - 1]
    result = attention_for(any_packaged_model, TEXT, layers=layers, encoding=encoding)
    n = len(result.tokens)
    maps = unpack(result.data, encoding, (len(layers), info.n_heads, n, n))
    tolerance = 2e-3 if encoding == "float16" else n / 255
    assert torch.allclose(maps.sum(-1), torch.ones(len(layers), info.n_heads, n), atol=tolerance)
    assert torch.equal(maps.triu(1), torch.zeros_like(maps))
    assert result.heads == tuple(range(info.n_heads))


def test_the_maps_are_the_models_own_attention(any_packaged_model):
    loaded = any_packaged_model
    result = attention_for(loaded, TEXT, layers=[1], heads=[0, 2], encoding="float16")
    n = len(result.tokens)
    ours = unpack(result.data, "float16", (1, 2, n, n))[0]
    ids = torch.tensor([prompt_ids(loaded, TEXT, None, False)])
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            reference = loaded.model(ids, output_attentions=True).attentions[1][0, [0, 2]]
    finally:
        loaded.model.set_attn_implementation("sdpa")
    assert torch.allclose(ours, reference.float(), atol=1e-3)


def test_grouped_query_heads_are_labelled(smollm2):
    result = attention_for(smollm2, TEXT, layers=[0])
    assert result.kv_head_of == (0, 0, 0, 1, 1, 1, 2, 2, 2)  # 9 query heads, 3 key/value heads


def test_one_layer_at_512_tokens_is_small(smollm2):
    text = "The keeper climbed the stairs and wrote the weather in his book. " * 40
    result = attention_for(smollm2, text, layers=[5])
    assert len(result.tokens) >= 512
    assert len(result.data) <= 1_500_000  # all 9 heads, as sent (base64)


def test_pack_round_trips():
    maps = torch.rand(2, 3, 5, 5).tril()
    assert torch.allclose(unpack(*_packed(maps, "float16"), (2, 3, 5, 5)), maps, atol=1e-3)
    assert torch.allclose(unpack(*_packed(maps, "uint8"), (2, 3, 5, 5)), maps, atol=1 / 510)


def _packed(maps, encoding):
    data, _raw = pack(maps, encoding)
    return data, encoding


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"layers": [99]}, "layers", "this model has 30 layers (0–29)"),
        ({"layers": []}, "layers", "at least one"),
        ({"layers": [0], "heads": [9]}, "heads", "9 heads (0–8)"),
        ({"layers": [0], "encoding": "png"}, "encoding", "uint8, float16"),
    ],
)
def test_bad_requests_name_the_field(smollm2, kwargs, field, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)) as caught:
        attention_for(smollm2, TEXT, **kwargs)
    assert caught.value.field == field


def _layer_runs(loaded):
    """Counts of each decoder layer's forward calls, while the returned handles stay."""
    runs = {}
    handles = [
        layer.register_forward_hook(lambda *_a, i=i: runs.__setitem__(i, runs.get(i, 0) + 1))
        for i, layer in enumerate(loaded.model.get_decoder().layers)
    ]
    return runs, handles


def test_a_layer_switch_runs_only_that_layer_and_gives_the_same_maps(any_packaged_model):
    """Gemma's layers alternate sliding-window and global attention, each with its own mask
    and rotary embeddings; SmolLM2's are all alike. Either way, a layer run alone on its kept
    inputs gives exactly the maps of the whole pass."""
    loaded = any_packaged_model
    last = loaded.info.n_layers - 1
    cache = LayerInputCache()
    reuse = (cache, "someone")
    runs, handles = _layer_runs(loaded)
    try:
        first = attention_for(loaded, TEXT, layers=[0], encoding="float16", reuse=reuse)
        assert runs == dict.fromkeys(range(last + 1), 1)  # the first pass keeps every layer's input
        runs.clear()
        switched = [
            attention_for(loaded, TEXT, layers=[layer], encoding="float16", reuse=reuse)
            for layer in (last, 5, 0)
        ]
        assert runs == {last: 1, 5: 1, 0: 1}  # one layer each
        runs.clear()
        attention_for(loaded, TEXT, layers=[3], encoding="float16", reuse=(cache, "another"))
        assert len(runs) == last + 1  # another person's request is not served from it
    finally:
        for handle in handles:
            handle.remove()
    assert switched[2].data == first.data
    for layer, result in zip((last, 5), switched[:2], strict=True):
        alone = attention_for(loaded, TEXT, layers=[layer], encoding="float16")
        assert result.data == alone.data
    assert cache.nbytes > 0


def test_the_kept_layer_inputs_are_bounded(smollm2):
    cache = LayerInputCache()
    attention_for(smollm2, TEXT, layers=[0], reuse=(cache, ""))
    one = cache.nbytes
    cache.max_bytes = int(one * 1.5)
    attention_for(smollm2, TEXT + " Again.", layers=[0], reuse=(cache, ""))
    assert cache.nbytes <= cache.max_bytes and len(cache._entries) == 1
    cache.max_bytes = one // 2  # too big to keep at all
    attention_for(smollm2, TEXT + " Once more.", layers=[0], reuse=(cache, ""))
    assert cache.nbytes == 0
