"""The backend the settings ask for: reads `Settings`, builds serving objects from plain values.

Serving never sees the settings (its layer imports only the runtime and the rules); this
module, on top, is the one place that turns them into a `Backend`.
"""

from __future__ import annotations

import logging

from engine.runtime.lm import MissingAdapter, MissingBaseModel
from engine.runtime.presets import Preset, get_preset
from engine.serving.backend import Backend
from engine.serving.hub import LocalBackend, ModelLoadError, split_backend
from engine.serving.remote import CompletionsGenerator, redacted_url
from engine.settings import Settings

__all__ = ["ModelLoadError", "load_backend"]

log = logging.getLogger(__name__)
MAX_LOAD_ERROR_CHARS = 200  # of the first line of what went wrong, in `ModelLoadError`


def load_backend(settings: Settings, threads: int | None = None) -> Backend:
    """The backend the settings ask for (the tiny preset must be built first).

    Missing models raise `MissingBaseModel`/`MissingAdapter`; anything else that goes wrong
    while reading model files becomes one `ModelLoadError` naming the folder. ``threads`` is
    the torch thread count of a model child process.
    """
    preset = get_preset(settings.model_preset, settings.models_dir)
    try:
        return _load(settings, preset, threads)
    except (MissingBaseModel, MissingAdapter):
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:MAX_LOAD_ERROR_CHARS]
        hint = (
            " (python -m training bootstrap --force rebuilds it)" if preset.name == "tiny" else ""
        )
        raise ModelLoadError(
            f"model files under {preset.artifacts} could not be read: {type(exc).__name__}: "
            f"{first}{hint}"
        ) from exc


def _load(settings: Settings, preset: Preset, threads: int | None) -> Backend:
    if settings.generation_backend == "openai":  # generation waits on HTTP: one process is enough
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        remote = CompletionsGenerator.from_preset(
            preset,
            settings.remote_base_urls,
            model_prefix=settings.openai_model_prefix,
            api_key=key,
            timeout_s=settings.openai_timeout_s,
            breaker_failures=settings.openai_breaker_failures,
            breaker_cooldown_s=settings.openai_breaker_cooldown_s,
        )
        log.info(
            "generating on %s",
            sorted({redacted_url(u) for u in settings.remote_base_urls.values()}),
        )
        return LocalBackend.load(preset, settings.memory_threshold, roles=remote)
    chunk = settings.batch_chunk_tokens or None
    if settings.model_processes < 2:
        return LocalBackend.load(
            preset, settings.memory_threshold, chunk_tokens=chunk, merge=settings.merge_adapters
        )
    return split_backend(
        preset,
        settings.memory_threshold,
        threads=threads,
        chunk_tokens=chunk,
        kanana_apart=settings.model_processes > 2,
        merge=settings.merge_adapters,
        call_timeout_s=settings.model_call_timeout_s,
    )
