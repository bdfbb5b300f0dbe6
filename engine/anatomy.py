"""Sampling you can see: one next-token distribution taken apart (SamplingAnatomy).

From one row of raw logits: each leading candidate's probability after every stage of the
pipeline (engine.sampling), the top tokens as temperature sweeps, how many tokens top-p and
top-k keep (and how much of the model's probability) as they sweep, and the common sampling
rules side by side on the same prefix with seeded draws. Every number comes from
run_pipeline itself, so it is exactly what a step under those settings would sample from.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import torch

from engine.limits import MAX_DRAWS
from engine.params import SamplingParams
from engine.sampling import STAGES, PipelineResult, choose, entropy, run_pipeline
from engine.tokenization import token_text
from engine.types import InputError

STAGE_LABELS = ("raw", *STAGES)  # "raw": softmax of the logits; then after each stage
TEMPERATURES = tuple(round(0.1 * i, 1) for i in range(1, 21))  # 0.1 … 2.0
TOP_PS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05 … 1.0 (1 = off)
TOP_KS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 75, 100, 0)  # 0 = off
N_CURVE_TOKENS = 8
N_STAGE_TOKENS = 12
# A rule whose own setting is off in the current parameters is shown at this common value.
RULE_DEFAULTS = {"top_k": 40, "top_p": 0.9, "min_p": 0.05}


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    special: bool


@dataclass(frozen=True)
class StageTrace:
    """One candidate through the pipeline: its raw logit, its probability after each of
    STAGE_LABELS (0 once a stage removed it) and the stage that removed it (None: kept)."""

    token: Token
    logit: float
    probabilities: tuple[float, ...]
    removed_by: str | None


@dataclass(frozen=True)
class Sweep:
    """One setting swept with the others held: per value, the number of tokens kept, the share
    of the model's own probability they hold (p_base) and the entropy sampled from (bits)."""

    name: str
    values: tuple[float, ...]
    n_kept: tuple[int, ...]
    kept_mass: tuple[float, ...]
    entropy: tuple[float, ...]
    current: float


@dataclass(frozen=True)
class Rule:
    """A sampling rule on this prefix: what it keeps and what `n_draws` seeded draws pick
    (seeds seed, seed + 1, …: what that many students with consecutive seeds would get)."""

    name: str
    params: dict
    n_kept: int
    kept_mass: float
    entropy: float
    kept: tuple[tuple[Token, float], ...]  # the leading kept tokens and their p_final
    draws: tuple[tuple[Token, int], ...]  # each drawn token and how often, most often first


@dataclass(frozen=True)
class SamplingAnatomy:
    stages: tuple[str, ...]
    traces: tuple[StageTrace, ...]
    temperatures: tuple[float, ...]
    temperature_curves: tuple[tuple[Token, tuple[float, ...]], ...]
    current_temperature: float
    sweeps: tuple[Sweep, ...]
    rules: tuple[Rule, ...]
    n_draws: int
    params: dict

    def to_dict(self) -> dict:
        def token(entry: Token) -> dict:
            return dataclasses.asdict(entry)

        return {
            "stages": list(self.stages),
            "traces": [
                {
                    "token": token(trace.token),
                    "logit": trace.logit,
                    "probabilities": list(trace.probabilities),
                    "removed_by": trace.removed_by,
                }
                for trace in self.traces
            ],
            "temperature": {
                "values": list(self.temperatures),
                "current": self.current_temperature,
                "curves": [
                    {"token": token(entry), "p_final": list(values)}
                    for entry, values in self.temperature_curves
                ],
            },
            "sweeps": [dataclasses.asdict(sweep) for sweep in self.sweeps],
            "rules": [
                {
                    "name": rule.name,
                    "params": rule.params,
                    "n_kept": rule.n_kept,
                    "kept_mass": rule.kept_mass,
                    "entropy": rule.entropy,
                    "kept": [{"token": token(t), "p_final": p} for t, p in rule.kept],
                    "draws": [{"token": token(t), "count": n} for t, n in rule.draws],
                }
                for rule in self.rules
            ],
            "n_draws": self.n_draws,
            "params": self.params,
        }


class _Pipeline:
    """run_pipeline on one row with the context held, under any parameters."""

    def __init__(self, logits, context_ids, completion_ids, valid_mask, tokenizer):
        self.logits = logits
        self.inputs = {
            "context_ids": context_ids,
            "completion_ids": completion_ids,
            "valid_mask": valid_mask,
        }
        self.tokenizer = tokenizer
        self._tokens: dict[int, Token] = {}

    def run(self, params: SamplingParams, on_stage=None) -> PipelineResult:
        return run_pipeline(self.logits, params, on_stage=on_stage, **self.inputs)

    def token(self, token_id: int) -> Token:
        if token_id not in self._tokens:
            text, special, _partial = token_text(self.tokenizer, token_id)
            self._tokens[token_id] = Token(id=token_id, text=text, special=special)
        return self._tokens[token_id]


def _kept_mass(result: PipelineResult) -> float:
    return float(torch.where(result.kept, result.p_base, 0.0).sum())


def _traces(pipeline: _Pipeline, params: SamplingParams) -> tuple[StageTrace, ...]:
    """The leading candidates (by the model's own probability, then any others the settings
    favour) and their probability after every stage."""
    after: list[torch.Tensor] = []
    result = pipeline.run(params, on_stage=lambda _stage, scores: after.append(scores.softmax(-1)))
    by_base = torch.topk(result.p_base, N_STAGE_TOKENS).indices.tolist()
    by_final = torch.topk(result.p_final, N_STAGE_TOKENS // 2).indices.tolist()
    chosen = by_base + [i for i in by_final if i not in by_base and result.p_final[i] > 0]
    rows = torch.stack([result.p_base, *after])[:, chosen]  # (stages, candidates)
    traces = []
    for column, token_id in enumerate(chosen):
        stage = int(result.removed_by[token_id])
        traces.append(
            StageTrace(
                token=pipeline.token(token_id),
                logit=float(result.logits[token_id]),
                probabilities=tuple(float(p) for p in rows[:, column]),
                removed_by=None if stage < 0 else STAGES[stage],
            )
        )
    return tuple(traces)


def _temperature_curves(pipeline: _Pipeline, params: SamplingParams):
    """p_final of the model's leading tokens at each of TEMPERATURES, the other settings
    held."""
    results = [
        pipeline.run(dataclasses.replace(params, temperature=t, greedy=False)) for t in TEMPERATURES
    ]
    leading = torch.topk(results[0].p_base, N_CURVE_TOKENS).indices.tolist()
    curves = tuple(
        (pipeline.token(i), tuple(float(result.p_final[i]) for result in results)) for i in leading
    )
    return curves, _sweep("temperature", TEMPERATURES, results, params.temperature)


def _sweep(name: str, values, results: list[PipelineResult], current: float) -> Sweep:
    return Sweep(
        name=name,
        values=tuple(values),
        n_kept=tuple(int(result.kept.sum()) for result in results),
        kept_mass=tuple(_kept_mass(result) for result in results),
        entropy=tuple(entropy(result.p_final) for result in results),
        current=current,
    )


def _truncation_sweeps(pipeline: _Pipeline, params: SamplingParams) -> tuple[Sweep, ...]:
    """Kept count and kept mass as top-p and top-k sweep (the other settings held; under
    greedy, at temperature 1 so that there is something to truncate)."""
    base = dataclasses.replace(params, temperature=params.temperature or 1.0, greedy=False)
    top_p = [pipeline.run(dataclasses.replace(base, top_p=p)) for p in TOP_PS]
    top_k = [pipeline.run(dataclasses.replace(base, top_k=k)) for k in TOP_KS]
    return (
        _sweep("top_p", TOP_PS, top_p, params.top_p),
        _sweep("top_k", TOP_KS, top_k, params.top_k),
    )


def _rule_params(params: SamplingParams) -> list[tuple[str, SamplingParams]]:
    """Greedy, plain temperature, and top-k, top-p and min-p each alone at the current
    temperature (penalties held)."""
    temperature = params.temperature or 1.0
    alone = dataclasses.replace(
        params, temperature=temperature, greedy=False, top_k=0, top_p=1.0, min_p=0.0
    )
    return [
        ("greedy", dataclasses.replace(alone, temperature=0.0, greedy=True)),
        ("temperature", alone),
        ("top_k", dataclasses.replace(alone, top_k=params.top_k or RULE_DEFAULTS["top_k"])),
        ("top_p", dataclasses.replace(alone, top_p=_on(params.top_p, 1.0, "top_p"))),
        ("min_p", dataclasses.replace(alone, min_p=params.min_p or RULE_DEFAULTS["min_p"])),
        ("current", params),
    ]


def _on(value: float, off: float, name: str) -> float:
    return RULE_DEFAULTS[name] if value == off else value


def _rule(pipeline: _Pipeline, name: str, params: SamplingParams, n_draws: int, step: int):
    result = pipeline.run(params)
    kept_ids = torch.nonzero(result.kept).flatten()
    leading = kept_ids[torch.argsort(result.p_final[kept_ids], descending=True)][:N_CURVE_TOKENS]
    drawn = Counter(
        choose(result, dataclasses.replace(params, seed=params.seed + i), step)
        for i in range(n_draws)
    )
    return Rule(
        name=name,
        params=params.to_dict(),
        n_kept=len(kept_ids),
        kept_mass=_kept_mass(result),
        entropy=entropy(result.p_final),
        kept=tuple((pipeline.token(i), float(result.p_final[i])) for i in leading.tolist()),
        draws=tuple((pipeline.token(i), n) for i, n in drawn.most_common()),
    )


def sampling_anatomy(
    logits: torch.Tensor,
    params: SamplingParams,
    tokenizer,
    *,
    context_ids: torch.Tensor,
    completion_ids: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    n_draws: int = 30,
) -> SamplingAnatomy:
    """The anatomy of the next token after `context_ids` (its raw `logits`); draws are made
    at step len(completion_ids), as a step there would draw."""
    if not 1 <= n_draws <= MAX_DRAWS:
        raise InputError(f"draws must be between 1 and {MAX_DRAWS}, got {n_draws}", "draws")
    if params.seed + n_draws > 2**63 - 1:
        raise InputError("The seed is too large for that many draws", field="seed")
    pipeline = _Pipeline(logits, context_ids, completion_ids, valid_mask, tokenizer)
    step = int(completion_ids.numel())
    curves, temperature_sweep = _temperature_curves(pipeline, params)
    rules = tuple(_rule(pipeline, name, p, n_draws, step) for name, p in _rule_params(params))
    return SamplingAnatomy(
        stages=STAGE_LABELS,
        traces=_traces(pipeline, params),
        temperatures=TEMPERATURES,
        temperature_curves=curves,
        current_temperature=0.0 if params.is_greedy else params.temperature,
        sweeps=(temperature_sweep, *_truncation_sweeps(pipeline, params)),
        rules=rules,
        n_draws=n_draws,
        params=params.to_dict(),
    )
