"""Model presets: which bases, adapters and S-BERT models a deployment uses, and where.

`tiny` is the embedded demo the project trains itself on a CPU from `data/`; `production` names
the upstream bases by Hugging Face id (or a local copy). Both go through the same loading and
training code; only sizes, paths and a few schedule numbers differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal

from engine.rules import prompts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ARTIFACTS = PROJECT_ROOT / "artifacts"
DATA_DIR = PROJECT_ROOT / "data" / "ohlora_v3"

Base = Literal["kanana", "polyglot"]


class Role(StrEnum):
    """The four LoRA roles; each value is its adapter's name (folder, server module, data column)."""

    REPLY = "output_message"
    SUMMARY = "summary"
    MEMORY = "memory"
    EXPRESSION = "eyes_mouth_pose"


ROLES: tuple[Role, ...] = tuple(Role)
SBERT_TASKS = ("ethics", "memory")

KANANA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
POLYGLOT_TARGETS = ("query_key_value",)


@dataclass(frozen=True)
class RoleSpec:
    """One LoRA role: its base, markers and the fine-tuning schedule of reference §3."""

    name: Role
    base: Base
    start: str
    end: str
    epochs: int
    batch_size: int
    target_modules: tuple[str, ...]


# Production schedule as upstream (§3): r=64, alpha=16, dropout 0.05, lr 3e-4.
LORA_RANK = 64
LORA_ALPHA = 16
LORA_DROPOUT = 0.05
LORA_LR = 3e-4

PRODUCTION_ROLES: dict[str, RoleSpec] = {
    Role.REPLY: RoleSpec(
        Role.REPLY, "kanana", prompts.REPLY_START, prompts.REPLY_END, 5, 2, KANANA_TARGETS
    ),
    Role.SUMMARY: RoleSpec(
        Role.SUMMARY, "kanana", prompts.SUMMARY_START, prompts.SUMMARY_END, 10, 2, KANANA_TARGETS
    ),
    Role.MEMORY: RoleSpec(
        Role.MEMORY, "polyglot", prompts.SUMMARY_START, prompts.SUMMARY_END, 20, 4, POLYGLOT_TARGETS
    ),
    Role.EXPRESSION: RoleSpec(
        Role.EXPRESSION,
        "polyglot",
        prompts.EXPRESSION_START,
        prompts.EXPRESSION_END,
        30,
        4,
        POLYGLOT_TARGETS,
    ),
}


@dataclass(frozen=True)
class Preset:
    """Where every model of a deployment comes from and where trained parts go."""

    name: str
    kanana_base: str  # Hugging Face id or local directory
    polyglot_base: str
    sbert_base: str
    artifacts: Path
    roles: dict[str, RoleSpec] = field(default_factory=lambda: dict(PRODUCTION_ROLES))
    # Upstream's published S-BERT thresholds suit klue/roberta-base; a trained model
    # saves its own calibration beside itself and that wins.
    default_memory_threshold: float = 0.95

    def base_for(self, role: str) -> str:
        return self.kanana_base if self.roles[role].base == "kanana" else self.polyglot_base

    def adapter_dir(self, role: str) -> Path:
        return self.artifacts / "adapters" / role

    def sbert_dir(self, task: str) -> Path:
        return self.artifacts / "sbert" / task

    @property
    def manifest_path(self) -> Path:
        return self.artifacts / "manifest.json"


# Tiny preset LoRA schedule (epochs, batch size) per role. The pretrained tiny base already
# carries the formats; one pass (~70 s on one CPU thread for all four) adapts it, and longer
# LoRA training measurably *hurt* summary acceptance (trained with the template in context).
TINY_SCHEDULE: dict[str, tuple[int, int]] = {
    Role.REPLY: (1, 16),
    Role.SUMMARY: (1, 16),
    Role.MEMORY: (1, 16),
    Role.EXPRESSION: (1, 16),
}


def tiny_roles() -> dict[str, RoleSpec]:
    """The production roles with the tiny schedule (markers and target modules unchanged)."""
    return {
        name: replace(spec, epochs=TINY_SCHEDULE[name][0], batch_size=TINY_SCHEDULE[name][1])
        for name, spec in PRODUCTION_ROLES.items()
    }


def tiny(artifacts: Path | None = None) -> Preset:
    """The embedded demo: everything is built under `artifacts/tiny` by `python -m training bootstrap`."""
    root = (artifacts or DEFAULT_ARTIFACTS) / "tiny"
    return Preset(
        name="tiny",
        kanana_base=str(root / "kanana_base"),
        polyglot_base=str(root / "polyglot_base"),
        sbert_base=str(root / "sbert_encoder"),
        artifacts=root,
        roles=tiny_roles(),
    )


def production(artifacts: Path | None = None, instruct: bool = False) -> Preset:
    """Upstream's bases by id; set HF_HOME or pass local paths through `with_bases`."""
    kanana = (
        "kakaocorp/kanana-1.5-2.1b-instruct-2505" if instruct else "kakaocorp/kanana-1.5-2.1b-base"
    )
    return Preset(
        name="production",
        kanana_base=kanana,
        polyglot_base="EleutherAI/polyglot-ko-1.3b",
        sbert_base="klue/roberta-base",
        artifacts=(artifacts or DEFAULT_ARTIFACTS) / "production",
    )


def with_bases(
    preset: Preset,
    *,
    kanana_base: str | None = None,
    polyglot_base: str | None = None,
    sbert_base: str | None = None,
) -> Preset:
    """The same preset with some bases pointed elsewhere (e.g. a local download)."""
    return replace(
        preset,
        kanana_base=preset.kanana_base if kanana_base is None else kanana_base,
        polyglot_base=preset.polyglot_base if polyglot_base is None else polyglot_base,
        sbert_base=preset.sbert_base if sbert_base is None else sbert_base,
    )


def get_preset(name: str, artifacts: Path | None = None) -> Preset:
    if name == "tiny":
        return tiny(artifacts)
    if name == "production":
        return production(artifacts)
    raise ValueError(f"unknown preset {name!r} (tiny or production)")
