"""Where a decoder-only model keeps the parts the analyses hook: its decoder layers, each
layer's attention module, its final norm and its position encoding.

Module names differ by family: Llama, Gemma, Qwen and Mistral keep `model.layers[i].self_attn`
and `model.norm`; GPT-2 (and GPT-J, GPT-Neo, Falcon, Bloom) keep `transformer.h[i].attn` and
`transformer.ln_f`, with learned position embeddings (`wpe`) instead of rotary ones.
`check_supported` is what adding a model to the catalog runs: a model whose parts are not found
here is refused with a message that names what is missing, instead of failing later in a panel.
"""

from __future__ import annotations

import torch

from engine.types import EngineError, ModelLoadError

DECODER_LAYER_NAMES = ("layers", "h")
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
FINAL_NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f")
# Causal language model classes end so (GPT2LMHeadModel, LlamaForCausalLM…); encoders and
# encoder-decoders (BertForMaskedLM, T5ForConditionalGeneration) do not.
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def decoder_layers(model) -> list[torch.nn.Module]:
    """The model's decoder layers in order (`layers`, or GPT-2's `h`)."""
    decoder = model.get_decoder()
    for name in DECODER_LAYER_NAMES:
        found = getattr(decoder, name, None)
        if isinstance(found, torch.nn.ModuleList) and len(found):
            return list(found)
    raise EngineError(
        f"TokenLens cannot find the decoder layers of {type(model).__name__} "
        f"(looked for {', '.join(DECODER_LAYER_NAMES)})",
        field="model",
    )


def attention_of(layer: torch.nn.Module) -> torch.nn.Module:
    """A decoder layer's attention module (`self_attn`, or GPT-2's `attn`)."""
    for name in ATTENTION_NAMES:
        found = getattr(layer, name, None)
        if isinstance(found, torch.nn.Module):
            return found
    raise EngineError(
        f"TokenLens cannot find the attention module of {type(layer).__name__} "
        f"(looked for {', '.join(ATTENTION_NAMES)})",
        field="model",
    )


def final_norm(model) -> torch.nn.Module:
    """The norm the model applies after its last layer, before lm_head."""
    decoder = model.get_decoder()
    for name in FINAL_NORM_NAMES:
        module = getattr(decoder, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise EngineError("The logit lens cannot find this model's final norm", field="model")


def is_causal_architecture(architectures: list[str] | None) -> bool:
    """Whether a config's `architectures` names a causal LM (no names: let the load decide)."""
    return not architectures or any(name.endswith(CAUSAL_SUFFIXES) for name in architectures)


def check_supported(model) -> None:
    """ModelLoadError naming the first part TokenLens's analyses need that `model` lacks: a
    decoder that attends causally, decoder layers with an attention module each, a final norm,
    input and output embeddings. Cheap: reads module attributes only."""
    name = type(model).__name__
    if getattr(model.config, "is_encoder_decoder", False):
        raise ModelLoadError(f"{name} is an encoder-decoder; TokenLens reads decoder-only models")
    try:
        layers = decoder_layers(model)
        for layer in layers:
            attention_of(layer)
        final_norm(model)
    except EngineError as error:
        raise ModelLoadError(f"{name} is not supported: {error.message}") from error
    if model.get_input_embeddings() is None or model.get_output_embeddings() is None:
        raise ModelLoadError(f"{name} is not supported: it has no input or output embeddings")
