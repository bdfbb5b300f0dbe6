"""Decoding parameters and their presets: validated here, torch-free, so the web side checks
what a person typed with the same rules the worker samples by (engine.sampling)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from engine.types import InputError

# Below this, logits / temperature overflow float32 (1e-40 gives inf - inf = NaN and a wrong
# pick); 0.01 already makes the top token ~e^100 times likelier than one 1 logit behind.
MIN_TEMPERATURE = 0.01


@dataclass(frozen=True)
class SamplingParams:
    """Decoding parameters. top_k 0, top_p 1 and min_p 0 mean off; temperature 0 means greedy."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    greedy: bool = False
    seed: int = 0

    def __post_init__(self):
        checks = {
            "temperature": self.temperature == 0 or MIN_TEMPERATURE <= self.temperature <= 100.0,
            "top_k": isinstance(self.top_k, int) and self.top_k >= 0,
            "top_p": 0.0 < self.top_p <= 1.0,
            "min_p": 0.0 <= self.min_p <= 1.0,
            "repetition_penalty": 0.0 < self.repetition_penalty <= 100.0,
            "presence_penalty": -2.0 <= self.presence_penalty <= 2.0,
            "frequency_penalty": -2.0 <= self.frequency_penalty <= 2.0,
            "seed": isinstance(self.seed, int) and 0 <= self.seed < 2**63,
        }
        ranges = {
            "temperature": f"0 (greedy) or between {MIN_TEMPERATURE} and 100",
            "top_k": "a whole number ≥ 0 (0 means off)",
            "top_p": "above 0 and at most 1 (1 means off)",
            "min_p": "between 0 and 1 (0 means off)",
            "repetition_penalty": "above 0 and at most 100 (1 means off)",
            "presence_penalty": "between -2 and 2",
            "frequency_penalty": "between -2 and 2",
            "seed": "a whole number between 0 and 2**63 - 1",
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and math.isnan(value)):
                raise InputError(f"{name} must be {ranges[name]}, got {value!r}", field=name)

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    @classmethod
    def from_dict(cls, data: dict | None) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        unknown = set(data or {}) - known
        if unknown:
            raise InputError(f"Unknown parameter {sorted(unknown)[0]!r}", field="params")
        return cls(**(data or {}))

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, SamplingParams] = {
    "greedy": SamplingParams(temperature=0.0, greedy=True),
    "reliable": SamplingParams(temperature=0.3, top_k=20, top_p=0.9, repetition_penalty=1.1),
    "balanced": SamplingParams(temperature=0.7, top_p=0.9, repetition_penalty=1.05),
    "creative": SamplingParams(temperature=1.1, top_p=0.98, min_p=0.02),
}
