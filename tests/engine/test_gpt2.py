"""Every analysis on a GPT-2 architecture (a tiny random one made by the tests): learned
position embeddings, Conv1D layers, decoder layers under `transformer.h[i].attn`, a LayerNorm
`ln_f`, no chat template. The engine must not assume Llama's or Gemma's module names."""

import pytest
import torch

from engine.architecture import attention_of, check_supported, decoder_layers, final_norm
from engine.attention import LayerInputCache, attention_for, unpack
from engine.attribution import attribute
from engine.distribution import next_token_logits, prompt_ids
from engine.embeddings import embeddings_overview, positions_for
from engine.heads import cluster_heads, head_features
from engine.lens import logit_lens
from engine.limits import ATTRIBUTION_METHODS
from engine.loading import load, spec_for
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest
from engine.tokenization import read_model_sequence
from engine.types import InputError, ModelLoadError

TEXT = "The capital of France is Paris. Once upon a time"


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    return load(spec_for(str(tiny_gpt2_dir)), tiny_gpt2_dir.parent, torch.device("cpu"))


def _ids(loaded) -> list[int]:
    return prompt_ids(loaded, TEXT, None, False)


def test_its_card_reads_the_gpt2_config(gpt2):
    info = gpt2.info
    assert info.architecture == "GPT2LMHeadModel"
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (2, 2, 2)
    assert (info.hidden_size, info.context_length) == (32, 64)
    assert info.vocab_size == len(gpt2.tokenizer)
    assert info.n_params == sum(p.numel() for p in gpt2.model.parameters())
    assert info.has_chat_template is False


def test_the_engine_finds_its_parts(gpt2):
    check_supported(gpt2.model)
    layers = decoder_layers(gpt2.model)
    assert layers == list(gpt2.model.transformer.h)
    assert attention_of(layers[0]) is gpt2.model.transformer.h[0].attn
    assert final_norm(gpt2.model) is gpt2.model.transformer.ln_f


def test_an_encoder_is_refused_naming_what_is_missing():
    from transformers import BertConfig, BertLMHeadModel

    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, is_decoder=True,
    )  # fmt: skip
    with pytest.raises(ModelLoadError, match="BertLMHeadModel is not supported.*decoder layers"):
        check_supported(BertLMHeadModel(config))


def test_the_chat_template_is_refused_with_its_reason(gpt2):
    with pytest.raises(InputError, match="chat template"):
        read_model_sequence(gpt2, TEXT, use_chat_template=True)


def test_batched_steps_match_steps_alone_with_learned_positions(gpt2):
    """Left-padded rows must give each token its own position (GPT-2 adds wpe[position])."""
    greedy = SamplingParams(temperature=0)
    short = tuple(gpt2.tokenizer.encode("Once upon"))
    long = tuple(_ids(gpt2))
    alone = [
        Stepper(gpt2, 1 << 24).step(StepRequest(name, ids, params=greedy, top_n=5))
        for name, ids in (("short", short), ("long", long))
    ]
    together = Stepper(gpt2, 1 << 24).step_many(
        [
            StepRequest("short", short, params=greedy, top_n=5),
            StepRequest("long", long, params=greedy, top_n=5),
        ]
    )
    for one, batched in zip(alone, together, strict=True):
        assert one.tokens[0].id == batched.tokens[0].id
        first = [c.p_base for c in one.tokens[0].distribution.candidates]
        second = [c.p_base for c in batched.tokens[0].distribution.candidates]
        assert first == pytest.approx(second, abs=1e-5)
    real = next_token_logits(gpt2, list(long)).softmax(-1)
    assert together[1].tokens[0].id == int(real.argmax())


def test_stepping_stops_at_its_64_learned_positions(gpt2):
    stepper = Stepper(gpt2, 1 << 24)
    full = tuple(range(1, 64))
    assert stepper.step(StepRequest("full", full)).finish_reason == "context_full"
    with pytest.raises(InputError, match="context window"):
        stepper.step(StepRequest("over", tuple(range(1, 65))))


def test_attention_maps_are_the_models_own_and_a_layer_switch_agrees(gpt2):
    ids = torch.tensor([_ids(gpt2)])
    cache = LayerInputCache()
    first = attention_for(gpt2, TEXT, layers=[0, 1], encoding="float16", reuse=(cache, "me"))
    n = len(first.tokens)
    ours = unpack(first.data, "float16", (2, 2, n, n))
    gpt2.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            reference = torch.stack(gpt2.model(ids, output_attentions=True).attentions)[:, 0]
    finally:
        gpt2.model.set_attn_implementation("sdpa")
    assert torch.allclose(ours, reference.float(), atol=1e-3)
    assert torch.equal(ours.triu(1), torch.zeros_like(ours))
    switched = attention_for(gpt2, TEXT, layers=[1], encoding="float16", reuse=(cache, "me"))
    assert torch.equal(unpack(switched.data, "float16", (1, 2, n, n))[0], ours[1])
    assert cache.nbytes > 0


def test_the_lens_last_depth_is_the_models_distribution(gpt2):
    lens = logit_lens(gpt2, TEXT)
    assert len(lens.rows) == 3  # the embeddings and two layers
    real = next_token_logits(gpt2, _ids(gpt2)).softmax(-1)
    ours = (lens.readout.logits[-1] - lens.readout.log_normalizer[-1]).exp()
    assert torch.allclose(ours, real, atol=1e-5)


def test_positions_are_the_learned_table(gpt2):
    positions = positions_for(gpt2, 64)
    assert positions.kind == "learned"
    assert positions.learned.source == "transformer.wpe"
    table = gpt2.model.transformer.wpe.weight
    assert positions.learned.norms == pytest.approx(table.norm(dim=-1).tolist(), abs=1e-5)
    overview = embeddings_overview(gpt2, read_model_sequence(gpt2, TEXT), n_positions=16)
    assert overview.to_dict()["positions"]["kind"] == "learned"
    assert overview.map is not None


def test_heads_are_clustered(gpt2):
    clusters = cluster_heads(head_features(gpt2, TEXT), k=2)
    assert len(clusters.cluster) == 4  # 2 layers × 2 heads
    assert sorted(set(clusters.cluster)) == [0, 1]


@pytest.mark.parametrize("method", list(ATTRIBUTION_METHODS))
def test_every_attribution_method_runs(gpt2, method):
    target = int(next_token_logits(gpt2, _ids(gpt2)).argmax())
    result = attribute(gpt2, TEXT, target_id=target, method=method, n_steps=16)
    assert len(result.scores) == len(_ids(gpt2))
    assert all(map(torch.isfinite, torch.tensor(result.scores)))
    if method == "integrated_gradients":
        path = result.path
        change = path.f_input - path.f_baseline + path.convergence_delta
        assert sum(result.scores) == pytest.approx(change, abs=1e-4)
