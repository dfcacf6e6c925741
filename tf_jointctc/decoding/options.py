"""Decoding options shared by evaluation and export: one validated record, read from a config's `decode`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """Beam search options (defaults: `tf_jointctc.config.base_config().decode`); exports bake them in.

    `lm_weight` is beta of shallow fusion with a character LM (`score += beta * log p_lm`, attention and joint
    modes); 0 decodes without an LM. The LM itself is not an option: callers load it (`decode.lm_workdir`) and
    pass it to `modes.decode`.
    """

    beam: int = 20
    ctc_weight: float = 0.3
    length_penalty: float = 0.1
    max_length_ratio: float = 1.0
    min_length_ratio: float = 0.0
    lm_weight: float = 0.0

    def __post_init__(self) -> None:
        if int(self.beam) < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if not 0.0 <= float(self.ctc_weight) <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if float(self.max_length_ratio) <= 0.0:
            raise ValueError(f"max_length_ratio must be > 0, got {self.max_length_ratio}")
        if not (float(self.lm_weight) >= 0.0 and math.isfinite(float(self.lm_weight))):
            raise ValueError(f"lm_weight must be a finite number >= 0, got {self.lm_weight}")

    @classmethod
    def from_config(cls, decode_config: Any = None, **overrides: Any) -> DecodeOptions:
        """From a config's `decode` section (ConfigDict or mapping); `None` overrides are ignored."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if decode_config is not None and field.name in decode_config:
                values[field.name] = decode_config[field.name]
            if overrides.get(field.name) is not None:
                values[field.name] = overrides[field.name]
        return cls(
            beam=int(values.get("beam", cls.beam)),
            ctc_weight=float(values.get("ctc_weight", cls.ctc_weight)),
            length_penalty=float(values.get("length_penalty", cls.length_penalty)),
            max_length_ratio=float(values.get("max_length_ratio", cls.max_length_ratio)),
            min_length_ratio=float(values.get("min_length_ratio", cls.min_length_ratio)),
            lm_weight=float(values.get("lm_weight", cls.lm_weight)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The options as a dict; `lm_weight` only when > 0, so that a record of decoding without an LM (e.g. an
        export's `export_info`) reads as before the LM existed."""
        values = dataclasses.asdict(self)
        if not self.lm_weight:
            del values["lm_weight"]
        return values
