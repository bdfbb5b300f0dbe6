"""Embeddings: the model's own rows and scale, nearest neighbours by cosine, positions as the
model's modules hold them (rotary buffers, or a learned table), and the prompt's PCA map."""

import math

import pytest
import torch
import torch.nn.functional as F

from engine.embeddings import embedding_for, positions_for, prompt_map
from engine.loading import ModelRegistry, build_catalog, spec_for
from engine.tokenization import read_sequence
from engine.types import InputError

pytestmark = pytest.mark.model

TEXT = "The cat sat on the mat, and the cat was happy."


def _sequence(loaded, text=TEXT):
    return read_sequence(
        loaded.tokenizer, text, model_key=loaded.spec.key, context_length=loaded.info.context_length
    )


def test_the_vector_is_the_models_own_row_and_scale(any_packaged_model):
    loaded = any_packaged_model
    token_id = _sequence(loaded).tokens[-1].id
    result = embedding_for(loaded, token_id)
    embedding = loaded.model.get_input_embeddings()
    row = embedding.weight[token_id].detach().float().cpu()
    assert torch.equal(torch.tensor(result.vector), row)
    assert len(result.vector) == loaded.info.hidden_size
    assert result.norm == pytest.approx(float(row.norm()), rel=1e-6)
    with torch.inference_mode():  # what the first layer really receives
        fed = embedding(torch.tensor([token_id], device=loaded.device))[0].float().cpu()
    assert torch.allclose(fed, row * result.scale, rtol=1e-5)


def test_gemma_scales_by_the_root_of_its_width_and_llama_not_at_all(smollm2, gemma):
    assert embedding_for(smollm2, 100, neighbours=0).scale == 1.0
    assert embedding_for(gemma, 100, neighbours=0).scale == pytest.approx(math.sqrt(640), rel=1e-6)


def test_neighbours_are_sorted_and_equal_a_brute_force_search(any_packaged_model):
    loaded = any_packaged_model
    weight = loaded.model.get_input_embeddings().weight.detach().float()
    normalized = F.normalize(weight, dim=-1)
    for token_id in _sequence(loaded).tokens[-3:]:
        result = embedding_for(loaded, token_id.id, neighbours=8)
        cosines = [neighbour.cosine for neighbour in result.neighbours]
        assert cosines == sorted(cosines, reverse=True)
        expected = normalized @ normalized[token_id.id]
        expected[token_id.id] = -2
        top = expected.topk(8)
        assert [n.id for n in result.neighbours] == top.indices.tolist()
        assert torch.allclose(torch.tensor(cosines), top.values.cpu(), atol=1e-5)
        assert token_id.id not in [n.id for n in result.neighbours]


@pytest.mark.parametrize("token_id", [-1, 10**7, True])
def test_a_token_id_outside_the_vocabulary_names_the_field(smollm2, token_id):
    with pytest.raises(InputError, match="outside this model's vocabulary") as caught:
        embedding_for(smollm2, token_id)
    assert caught.value.field == "token_id"


def _rope_thetas(config) -> dict:
    """{layer type or None: rope_theta}, read from the config independently of the engine."""
    parameters = config.rope_parameters
    if "rope_theta" in parameters:
        return {None: parameters["rope_theta"]}
    return {layer_type: params["rope_theta"] for layer_type, params in parameters.items()}


def test_rotary_frequencies_follow_the_config(any_packaged_model):
    config = any_packaged_model.model.config
    positions = positions_for(any_packaged_model, 16)
    assert positions.kind == "rotary"
    thetas = _rope_thetas(config)
    assert {rotary.layer_type for rotary in positions.rotary} == set(thetas)
    d = config.head_dim
    for rotary in positions.rotary:
        base = thetas[rotary.layer_type]
        expected = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        assert rotary.base == base and rotary.head_dim == d
        assert torch.allclose(torch.tensor(rotary.inv_freq, dtype=torch.float64), expected)
        angles = torch.tensor(rotary.angles)  # (positions, pairs)
        raw = torch.arange(16, dtype=torch.float64)[:, None] * expected
        assert torch.allclose(angles.double(), raw.remainder(2 * math.pi), atol=1e-3)
    used = sorted(layer for rotary in positions.rotary for layer in rotary.layers)
    assert used == list(range(config.num_hidden_layers))


def test_gemma_has_a_local_and_a_global_rotary_on_their_own_layers(gemma):
    by_type = {rotary.layer_type: rotary for rotary in positions_for(gemma, 4).rotary}
    layer_types = gemma.model.config.layer_types
    assert set(by_type) == {"sliding_attention", "full_attention"}
    assert by_type["sliding_attention"].base < by_type["full_attention"].base
    for layer_type, rotary in by_type.items():
        assert rotary.layers == tuple(i for i, t in enumerate(layer_types) if t == layer_type)


def test_the_angles_are_those_the_rotary_module_applies(any_packaged_model):
    model = any_packaged_model.model
    rotary_module = model.get_decoder().rotary_emb
    position_ids = torch.arange(32, device=any_packaged_model.device)[None]
    x = torch.zeros(1, device=any_packaged_model.device)
    for rotary in positions_for(any_packaged_model, 32).rotary:
        extra = (rotary.layer_type,) if rotary.layer_type else ()
        cos, _sin = rotary_module(x, position_ids, *extra)  # (1, positions, rotary_dim)
        pairs = len(rotary.inv_freq)
        ours = torch.tensor(rotary.angles).cos() * rotary.attention_scaling
        assert torch.allclose(ours, cos[0, :, :pairs].float().cpu(), atol=2e-4)


@pytest.mark.parametrize("n_positions", [0, 5000, 2.5])
def test_a_bad_position_count_names_the_field(smollm2, n_positions):
    with pytest.raises(InputError) as caught:
        positions_for(smollm2, n_positions)
    assert caught.value.field == "n_positions"


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, smollm2):
    """A tiny random GPT-2 (learned absolute positions) loaded as a local model folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=16, vocab_size=len(smollm2.tokenizer), n_positions=64
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    spec = spec_for(str(folder))
    registry = ModelRegistry(build_catalog([str(folder)]), tmp_path_factory.mktemp("cache"), "cpu")
    return registry.get(spec.key)


def test_learned_positions_are_the_models_position_table(tiny_gpt2):
    positions = positions_for(tiny_gpt2, 8)
    table = tiny_gpt2.model.transformer.wpe.weight.detach()
    assert positions.kind == "learned" and positions.rotary == ()
    learned = positions.learned
    assert learned.source == "transformer.wpe"
    assert torch.allclose(torch.tensor(learned.norms), table.norm(dim=-1))
    assert len(learned.norms) == 64 and len(learned.vectors) == 8
    assert torch.allclose(torch.tensor(learned.vectors), table[:8], atol=1e-4)
    assert positions.to_dict()["formula"] is None


def test_a_model_without_a_scale_or_rotary_still_gets_its_embedding(tiny_gpt2):
    result = embedding_for(tiny_gpt2, 5, neighbours=3)
    assert result.scale == 1.0 and len(result.vector) == 16 and len(result.neighbours) == 3


def test_the_map_has_one_point_per_token(any_packaged_model):
    sequence = _sequence(any_packaged_model)
    result = prompt_map(any_packaged_model, sequence)
    assert [p.id for p in result.points] == [t.id for t in sequence.tokens]
    assert [p.position for p in result.points] == list(range(sequence.count))
    first, second = result.explained_variance
    assert 0 < second <= first <= 1
    cats = [(p.x, p.y) for p in result.points if p.text == " cat"]
    assert len(cats) == 2 and cats[0] == cats[1]  # a repeated token lands on the same spot


def test_a_map_needs_three_different_tokens(smollm2):
    with pytest.raises(InputError, match="at least 3 different tokens") as caught:
        prompt_map(smollm2, _sequence(smollm2, "hi hi"))
    assert caught.value.field == "text"
