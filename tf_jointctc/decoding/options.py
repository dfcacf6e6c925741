"""Decoding options shared by evaluation and export: one validated record, read from a config's `decode`, the
rule that gives a search its language-model weight (`fused_lm_weight`), and which modes' own settings an explicit
shared value replaces (`explicit_mode_settings`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def _optional_float(value: Any) -> float | None:
    """None stays None (a placeholder key: "not set"); anything else as a float."""
    return None if value is None else float(value)


def _integer(value: Any) -> int:
    """`value` as an int; ValueError for a number with a fraction (2.5), which int() would cut."""
    number = int(value)
    if number != value:
        raise ValueError(f"must be an integer, got {value!r}")
    return number


def fused_lm_weight(configured: float, explicit: float | None, with_lm: bool) -> float:
    """The LM weight beta a search runs with: `explicit` (a flag or argument) when given, else `configured` (a
    config's `decode.lm_weight`, the weight *when* an LM is fused) with an LM and 0.0 without one (`with_lm`
    False). jointctc-eval and jointctc-export both apply it.

    Raises ValueError for a weight that is not a finite number >= 0, and for an explicit weight > 0 without an LM
    (saying how to give one).
    """
    weight = float(configured if explicit is None else explicit)
    if not (weight >= 0.0 and math.isfinite(weight)):
        raise ValueError(f"lm_weight must be a finite number >= 0, got {weight}")
    if with_lm:
        return weight
    if explicit is not None and weight > 0.0:
        raise ValueError(f"lm_weight={weight} needs a language model: pass --lm_workdir (a jointctc-train-lm work "
                         "dir) or set decode.lm_workdir, or set the weight to 0")
    return 0.0


# Each decoding mode's own settings when an LM is fused: mode -> {shared field: the mode's own field}. A mode's own
# field (None: not set) replaces the shared one in `DecodeOptions.for_mode`; modes.ATTENTION and modes.JOINT by
# name, since modes imports this module.
MODE_LM_SETTINGS: dict[str, dict[str, str]] = {
    "attention": {"lm_weight": "attention_lm_weight", "length_penalty": "attention_lm_length_penalty"},
    "joint": {"ctc_weight": "joint_lm_ctc_weight"},
}
_MODE_LM_FIELDS = tuple(own for fields in MODE_LM_SETTINGS.values() for own in fields.values())
_SHARED_LM_FIELDS = tuple(dict.fromkeys(shared for fields in MODE_LM_SETTINGS.values() for shared in fields))


def explicit_mode_settings(explicit: Mapping[str, float | None]) -> dict[str, float | None]:
    """The modes' own fields that explicit shared values stand for: an explicitly asked `lm_weight`,
    `length_penalty` or `ctc_weight` (a flag; None: not asked) is the one the decoding mode runs with, so it also
    replaces that mode's own setting (`MODE_LM_SETTINGS`). Returns {own field: value} for `DecodeOptions.from_config`
    overrides (None values are ignored there)."""
    return {own: explicit.get(shared) for fields in MODE_LM_SETTINGS.values() for shared, own in fields.items()}


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """Beam search options (defaults: `tf_jointctc.config.base_config().decode`); exports bake them in.

    `lm_weight` is beta of shallow fusion with a character LM (`score += beta * log p_lm`, attention and joint
    modes); 0 decodes without an LM. The LM itself is not an option: callers load it (`decode.lm_workdir`) and
    pass it to `modes.decode`.

    `attention_lm_weight` and `attention_lm_length_penalty` are the attention mode's own beta and length bonus
    when an LM is fused (its hypotheses end early at the joint mode's beta: docs/accuracy.md, rows alp and the
    attention mode's LM weight); None keeps `lm_weight` / `length_penalty`. `joint_lm_ctc_weight` is the joint
    mode's own CTC weight when an LM is fused (the weight tuned with the LM need not be the one tuned without it:
    docs/accuracy.md, "Joint decoding's CTC weight without the LM"); None keeps `ctc_weight`. `for_mode` applies
    them.

    `coverage_weight` (>= 0; 0: none) adds the coverage term, `coverage_weight` per encoder frame whose attention
    summed over the hypothesis exceeds `coverage_threshold` (`scorers.CoverageScorer`), in the attention and joint
    modes. `max_repeats` (>= 0; 0: no limit) forbids hypotheses that hold a unit of 2 to 24 tokens more than
    `max_repeats` times in a row (`scorers.RepeatLimit`), in the same modes. `max_attention_stall` (>= 0 tokens;
    0: no limit) lets a hypothesis whose attention peak has stayed behind its furthest frame for more than that many
    tokens in a row only end there (`scorers.AttentionStallLimit`), in the same modes.
    """

    beam: int = 20
    ctc_weight: float = 0.3
    length_penalty: float = 0.1
    max_length_ratio: float = 1.0
    min_length_ratio: float = 0.0
    lm_weight: float = 0.0
    attention_lm_weight: float | None = None
    attention_lm_length_penalty: float | None = None
    joint_lm_ctc_weight: float | None = None
    coverage_weight: float = 0.0
    coverage_threshold: float = 0.5
    max_repeats: int = 0
    max_attention_stall: int = 0

    def __post_init__(self) -> None:
        for name, cast in _FIELD_CASTS.items():  # one type per field, however it was given (e.g. 0 for 0.0)
            try:
                object.__setattr__(self, name, cast(getattr(self, name)))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}: {error}") from None
        if self.beam < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.max_length_ratio <= 0.0:
            raise ValueError(f"max_length_ratio must be > 0, got {self.max_length_ratio}")
        if not (self.lm_weight >= 0.0 and math.isfinite(self.lm_weight)):
            raise ValueError(f"lm_weight must be a finite number >= 0, got {self.lm_weight}")
        weight = self.attention_lm_weight
        if weight is not None and not (weight >= 0.0 and math.isfinite(weight)):
            raise ValueError(f"attention_lm_weight must be a finite number >= 0 or None, got {weight}")
        joint_weight = self.joint_lm_ctc_weight
        if joint_weight is not None and not 0.0 <= joint_weight <= 1.0:
            raise ValueError(f"joint_lm_ctc_weight must be in [0, 1] or None, got {joint_weight}")
        if not (self.coverage_weight >= 0.0 and math.isfinite(self.coverage_weight)):
            raise ValueError(f"coverage_weight must be a finite number >= 0, got {self.coverage_weight}")
        if not self.coverage_threshold > 0.0:
            raise ValueError(f"coverage_threshold must be > 0, got {self.coverage_threshold}")
        if self.max_repeats < 0:
            raise ValueError(f"max_repeats must be an integer >= 0, got {self.max_repeats}")
        if self.max_attention_stall < 0:
            raise ValueError(f"max_attention_stall must be an integer >= 0, got {self.max_attention_stall}")

    @classmethod
    def from_config(cls, decode_config: Any = None, **overrides: Any) -> DecodeOptions:
        """From a config's `decode` section (ConfigDict or mapping; its other keys, e.g. `lm_workdir`, are not
        options) and keyword overrides named after the fields; `None` overrides are ignored. Raises ValueError for
        an override that names no field."""
        unknown = sorted(set(overrides) - set(_FIELD_CASTS))
        if unknown:
            raise ValueError(f"unknown decoding options {unknown}; known: {sorted(_FIELD_CASTS)}")
        values: dict[str, Any] = {}
        for name in _FIELD_CASTS:
            if decode_config is not None and name in decode_config:
                values[name] = decode_config[name]
            if overrides.get(name) is not None:
                values[name] = overrides[name]
        return cls(**values)

    def for_mode(self, mode: str, with_lm: bool) -> DecodeOptions:
        """The options one decoding mode runs with: in mode "attention" with an LM fused (`with_lm`), `lm_weight`
        and `length_penalty` become `attention_lm_weight` and `attention_lm_length_penalty` where those are set; in
        mode "joint" with an LM, `ctc_weight` becomes `joint_lm_ctc_weight` where set; every other mode, or
        without an LM, as they are (`MODE_LM_SETTINGS`). The result has no per-mode fields left."""
        chosen: dict[str, float | None] = {name: None for name in _MODE_LM_FIELDS}
        for shared in _SHARED_LM_FIELDS:
            chosen[shared] = float(getattr(self, shared))
        for shared, own in (MODE_LM_SETTINGS.get(mode, {}) if with_lm else {}).items():
            if getattr(self, own) is not None:
                chosen[shared] = float(getattr(self, own))
        return dataclasses.replace(self, **chosen)

    def search_settings(self) -> dict[str, Any]:
        """{field: value} of every shared setting, without the attention and joint modes' own LM fields (what
        `for_mode` leaves a search; their names are `beam_search`'s keywords), for a search and a record of it."""
        return {name: getattr(self, name) for name in _FIELD_CASTS if name not in _MODE_LM_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The options as a dict; `lm_weight` only when > 0, the coverage term only with a weight > 0, `max_repeats`
        and `max_attention_stall` only when > 0, and the attention and joint modes' own LM settings only when set,
        so that a record of decoding without them (e.g. an export's `export_info`) reads as before they existed."""
        values = dataclasses.asdict(self)
        if not self.lm_weight:
            del values["lm_weight"]
        if not self.coverage_weight:
            del values["coverage_weight"], values["coverage_threshold"]
        if not self.max_repeats:
            del values["max_repeats"]
        if not self.max_attention_stall:
            del values["max_attention_stall"]
        for name in _MODE_LM_FIELDS:
            if values[name] is None:
                del values[name]
        return values


# Each field's type, applied to every value however given (the fields' annotations are strings here).
_FIELD_CASTS: dict[str, Any] = {
    field.name: {"int": _integer, "float": float, "float | None": _optional_float}[field.type]
    for field in dataclasses.fields(DecodeOptions)
}
