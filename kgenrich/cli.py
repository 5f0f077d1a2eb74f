"""The `kgenrich` command line: run, serve, export, demo, query, push (and recommend).

Loads the one Settings object (`kgenrich.settings.load_settings`: `--set` > flags > `--config`
file > environment `KGENRICH_*` > defaults) before any expensive step and hands it to the
Prefect flow. Every KgenrichError becomes a one-line message and its exit code: 2 for a mistake
in the inputs, settings or environment (a locked output folder included), 3 for a run that ran
but did not do its work (no LLM answer at all, or too many failed items); a crash is 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import contextlib  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, get_args  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from kgenrich import data as packaged_data  # noqa: E402
from kgenrich.cli_logging import LogFormat, log_handler  # noqa: E402
from kgenrich.errors import KgenrichError  # noqa: E402
from kgenrich.settings import DecisionName, ExportFormat, Settings, load_settings  # noqa: E402

DEFAULT_ONTOLOGY = packaged_data.ontology("movies")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Knowledge-graph enrichment for item catalogs.")
console = Console(stderr=True)


def _terminate_cleanly() -> None:
    """Turn SIGTERM into KeyboardInterrupt so context managers run and the embedded LLM server
    (a child process) is stopped instead of orphaned."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _setup_logging(verbose: bool, log_format: LogFormat | str = LogFormat.plain) -> None:
    _terminate_cleanly()
    from kgenrich.cli_prefect import isolate_ephemeral_prefect, send_package_logs_to_prefect

    # Before Prefect's first import, which reads its settings once: without a server, this
    # process gets its own Prefect home, so concurrent runs do not share a database; and our
    # loggers reach the flow run's logs in the Prefect UI.
    isolate_ephemeral_prefect()
    send_package_logs_to_prefect()
    # Import Prefect first: it configures logging on import, and our levels must win.
    import prefect  # noqa: F401

    handler = log_handler(log_format, console)
    # A filter on the handler, not logger levels: libraries (pykeen, Prefect) reset their own
    # loggers' levels when imported or when a run starts.
    handler.addFilter(_OursOrSevere(verbose))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


class _OursOrSevere(logging.Filter):
    """Our INFO progress lines, everybody's errors; other libraries' warnings with --verbose."""

    OURS = ("flows", "pipeline", "kg", "kgenrich", "recsys")

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] in self.OURS:
            return True
        return record.levelno >= (logging.WARNING if self.verbose else logging.ERROR)


def _fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(err, "exit_code", 2)) from err


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise typer.BadParameter(f"{what} {p!r}: expected COLUMN=RELATION")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


SET_HELP = (
    "Any setting as section.key=VALUE (repeatable), e.g. complete.samples=1, "
    "verify.model=RotatE, llm.base_url=http://127.0.0.1:8000/v1, "
    "export.formats='[\"turtle\"]'. VALUE is read as JSON when it parses, else as a string. "
    "Wins over the flags, --config and KGENRICH_* variables; a misspelt key or a bad value "
    "stops before any work. Every setting: kgenrich/settings.py."
)
#: The `--set` option, declared once for every command that loads settings.
SetOption = Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)]
#: The `--log-format` option of the commands that run a flow.
LogFormatOption = Annotated[LogFormat, typer.Option(
    help="plain: rich on a terminal, one unwrapped line per record otherwise (cron, CI); "
         "json: one JSON object per line (time, level, logger, message).")]


def _print_report(report: Any) -> None:
    table = Table(title=f"run {report.run}")
    for col in ("stage", "kept", "rejected", "LLM calls", "cached", "tokens", "s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in report.stages:
        table.add_row(s.stage, str(s.kept), str(s.rejected), str(s.llm_calls), str(s.cache_hits),
                      str(s.prompt_tokens + s.completion_tokens), f"{s.seconds:.1f}")
    Console().print(table)
    Console().print("decisions:", dict(sorted(report.decisions.items())))
    for name, path in report.outputs.items():
        Console().print(f"  {name}: {path}")


def _print_where(out: Path, url: str | None) -> None:
    """After `_print_report` (which lists the graph files): the flow run in the Prefect UI when
    there is a server, and the report."""
    c = Console(soft_wrap=True)  # a path or URL cut in two cannot be pasted
    if url:
        c.print(f"flow run: {url}", highlight=False)
    c.print(f"report: {out / 'report.md'}  {out / 'report.html'}", highlight=False)


@app.command()
def run(
    catalog: Annotated[Path, typer.Option(help="Item catalog: CSV, TSV, JSONL, Parquet, RecBole "
                                                ".item.", exists=True, dir_okay=False)],
    ontology: Annotated[Path, typer.Option(help="Ontology JSON/TOML.", exists=True)] = DEFAULT_ONTOLOGY,
    out: Annotated[Path, typer.Option(help="Output folder. Its exports are swapped in together "
                                           "(written atomically); the state store and review "
                                           "verdicts in it are kept.")] = Path("out"),
    id_col: Annotated[str, typer.Option(help="Catalog id column.")] = "id",
    title_col: Annotated[str, typer.Option(help="Catalog title column.")] = "title",
    text_col: Annotated[list[str], typer.Option(help="Free-text column (repeatable).")] = [],  # noqa: B006
    attr: Annotated[list[str], typer.Option(help="COLUMN=RELATION (repeatable).")] = [],  # noqa: B006
    list_sep: Annotated[str, typer.Option(help="Separator inside list cells.")] = "|",
    catalog_format: Annotated[str, typer.Option(help="auto|csv|tsv|jsonl|parquet|recbole")] = "auto",
    seed: Annotated[Path | None, typer.Option(help="Seed KG file.", exists=True)] = None,
    seed_format: Annotated[str, typer.Option(help="auto|tsv|nt|ttl|recbole|ripplenet|rkge")] = "auto",
    seed_link: Annotated[Path | None, typer.Option(help="RecBole .link / RippleNet item index.",
                                                   exists=True)] = None,
    interactions: Annotated[Path | None, typer.Option(help="User-item ratings for "
                                                           "ratings_final.txt and RecBole .inter; "
                                                           "a copy is kept in the output folder "
                                                           "for `kgenrich export`.",
                                                      exists=True)] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (JSON or TOML).",
                                                exists=True)] = None,
    set_: SetOption = [],  # noqa: B006
    backend: Annotated[str | None, typer.Option(help="llm.backend: embedded|openai|fake.")] = None,
    base_url: Annotated[str | None, typer.Option(help="llm.base_url: OpenAI-compatible base "
                                                 "URL.")] = None,
    model: Annotated[str | None, typer.Option(help="llm.model: LLM model name.")] = None,
    samples: Annotated[int | None, typer.Option(help="complete.samples: k samples per "
                                                "completion.")] = None,
    max_items: Annotated[int | None, typer.Option(help="complete.max_items: complete at most "
                                                  "N items.")] = None,
    seed_skip_bad: Annotated[bool, typer.Option(help="Skip malformed seed lines (counted in "
                                                "the report) instead of failing.")] = False,
    run_name: Annotated[str | None, typer.Option(help="Name of the run (report folder).")] = None,
    store: Annotated[Path | None, typer.Option(help="Oxigraph graph store folder to load the "
                                                "graph into (query it with `kgenrich query`).")] = None,
    push: Annotated[str | None, typer.Option("--push", metavar="URL", help="push.endpoint: after the export, push graph.nq's graphs to this Graph Store Protocol endpoint (see `kgenrich push`).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only check the inputs and settings "
                                          "and print what the run would ask (items, gaps, "
                                          "estimated LLM calls); starts no Prefect, no LLM.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOption = LogFormat.plain,
) -> None:
    """Enrich a catalog (and optional seed KG) and write every export.

    Settings come from defaults, KGENRICH_* variables, --config, the flags and --set, each
    later one winning: e.g. --set verify.model=RotatE --set extract.enabled=false."""
    opts = locals()
    from kgenrich.runs.health import incomplete
    from kgenrich.runs.lock import output_lock

    with contextlib.ExitStack() as held:
        try:
            settings = _run_settings(opts)  # first: a bad setting fails before Prefect loads
            if not dry_run:  # one run per --out: a second one stops here, before Prefect/LLM
                held.enter_context(output_lock(opts["out"]))
            _preflight(opts, settings)
        except KgenrichError as err:
            _fail(err)
        _setup_logging(verbose, log_format)
        from kgenrich.cli_flowrun import run_enrich

        try:
            report, url = run_enrich(_inputs(opts), settings)
        except KgenrichError as err:
            _fail(err)
        _print_report(report)
        _print_where(opts["out"], url)
        problem = incomplete(report.extra["health"],
                             max_failed_item_share=settings.max_failed_item_share)
        if problem is not None:  # exit 3: the run ran but did not do its work
            _fail(problem)


def _run_settings(o: dict[str, Any]) -> Settings:
    """The one Settings object from `run`/`serve` options."""
    return load_settings(o["config"], flags={
        "llm.backend": o["backend"], "llm.base_url": o["base_url"], "llm.model": o["model"],
        "complete.samples": o["samples"], "complete.max_items": o["max_items"],
        "push.endpoint": o["push"],
    }, assignments=o["set_"])


def _preflight(o: dict[str, Any], settings: Settings) -> None:
    """Check the inputs before Prefect loads (runs/preflight.py); with --dry-run print what the
    run would ask and exit 0."""
    from kgenrich.cli_preflight import preflight_inputs, print_preflight

    result = preflight_inputs(
        catalog=o["catalog"], mapping=_mapping(o), ontology=o["ontology"], seed=o["seed"],
        seed_format=o["seed_format"], seed_link=o["seed_link"],
        seed_on_error="skip" if o["seed_skip_bad"] else "raise", settings=settings)
    print_preflight(result, console=console, dry_run=o["dry_run"])
    result.raise_for_problems()
    if o["dry_run"]:
        raise typer.Exit(0)


def _mapping(o: dict[str, Any]) -> Any:
    """The catalog mapping from `run`/`serve` options."""
    from pydantic import ValidationError

    from kgenrich.errors import InputError
    from kgenrich.kg.io.catalog import CatalogMapping

    try:
        return CatalogMapping(id=o["id_col"], title=o["title_col"], text=tuple(o["text_col"]),
                              attributes=_parse_pairs(o["attr"], "--attr"),
                              list_separator=o["list_sep"], format=o["catalog_format"])
    except ValidationError as err:
        raise InputError(err.errors()[0]["msg"], field="mapping") from err


def _inputs(o: dict[str, Any]) -> Any:
    """The flow's inputs from `run`/`serve` options."""
    from kgenrich.flows.enrich import EnrichInputs

    mapping = _mapping(o)
    return EnrichInputs(
        catalog=o["catalog"], ontology=o["ontology"], out_dir=o["out"], seed=o["seed"],
        seed_format=o["seed_format"], seed_link=o["seed_link"],
        interactions=o["interactions"], run_name=o["run_name"], store=o["store"],
        seed_on_error="skip" if o["seed_skip_bad"] else "raise",
        mapping=mapping,
    )


def _serve_options(
    cron: Annotated[str, typer.Option(help="Cron schedule, e.g. '0 3 * * *'.")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="Deployment name (enrich/<name>).")] = "scheduled",
    timezone: Annotated[str | None, typer.Option(help="IANA time zone of the schedule.")] = None,
    pause_on_shutdown: Annotated[bool, typer.Option(help="Pause the schedule when this process stops.")] = False,
) -> None:
    """Only a signature: the options `serve` adds to every `run` option."""


def serve(**opts: Any) -> None:
    """Serve the enrich flow on a cron schedule (needs a Prefect server: PREFECT_API_URL).

    Takes every `run` option; the stored deployment parameters never contain the API key, which
    each run reads from KGENRICH_LLM__API_KEY."""
    try:
        settings = _run_settings(opts)
        _preflight(opts, settings)
    except KgenrichError as err:
        _fail(err)
    _setup_logging(opts["verbose"], opts["log_format"])
    from kgenrich.flows.serve import serve_command

    try:
        code = serve_command(_inputs(opts), settings, cron=opts["cron"], name=opts["name"],
                             timezone=opts["timezone"],
                             pause_on_shutdown=opts["pause_on_shutdown"])
    except KgenrichError as err:
        _fail(err)
    raise typer.Exit(code)


# `serve` takes exactly `run`'s options plus the schedule's: one declaration of each, read by
# Typer through the signature.
def _resolved(fn: Any) -> list[inspect.Parameter]:
    # Annotations are strings here (future import); Typer needs the real Annotated types.
    hints = typing.get_type_hints(fn, include_extras=True)
    return [p.replace(annotation=hints[p.name]) for p in inspect.signature(fn).parameters.values()]


serve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [*_resolved(run), *_resolved(_serve_options)], return_annotation=None
)
app.command()(serve)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output folder.", exists=True)],
    out: Annotated[Path, typer.Option(help="Where to write.")],
    formats: Annotated[list[str], typer.Option(
        "--format", help=f"export.formats: {'|'.join(get_args(ExportFormat))} (repeatable)."
    )] = [],  # noqa: B006
    include: Annotated[list[str], typer.Option(
        help=f"export.include: decisions for recommender files, "
        f"{'|'.join(get_args(DecisionName))} (repeatable).",
    )] = [],  # noqa: B006
    no_llm: Annotated[bool, typer.Option(help="Drop every LLM-added triple.")] = False,
    interactions: Annotated[Path | None, typer.Option(
        help="User-item ratings; default: the copy the run kept.", exists=True,
        dir_okay=False)] = None,
    set_: SetOption = [],  # noqa: B006
) -> None:
    """Re-export a finished run (from its triples.jsonl) in other formats or with other filters.

    Uses the run's item order and interactions (recorded in the run folder), so the RippleNet
    ids and ratings match the run's; the exports are swapped into --out together."""
    try:
        settings = load_settings(None, flags={"export.formats": tuple(formats) or None,
                                              "export.include": tuple(include) or None},
                                 assignments=set_).export
    except KgenrichError as err:
        _fail(err)
    _setup_logging(False)
    from kgenrich.flows.io import read_export_inputs, write_exports
    from kgenrich.kg.export.jsonl import read_jsonl
    from kgenrich.kg.records import TRUSTED_SOURCES

    try:
        recorded = read_export_inputs(run_dir)
        dump = read_jsonl(run_dir)
        entities, triples = list(dump.entities), list(dump.triples)
        if no_llm:
            triples = [t for t in triples if t.provenance.source in TRUSTED_SOURCES]
        written = write_exports(out, entities=entities, triples=triples, items=recorded.items,
                                interactions=interactions or recorded.interactions,
                                settings=settings)
    except KgenrichError as err:
        _fail(err)
    for name, path in written.paths.items():
        Console().print(f"  {name}: {path}")
    for name, counts in written.counts.items():
        if counts.get("dropped_items") or counts.get("dropped_interactions"):
            Console().print(f"  {name} dropped {counts.get('dropped_items', 0)} items without a "
                            f"triple, {counts.get('dropped_interactions', 0)} interactions")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/demo"),
    backend: Annotated[str | None, typer.Option(help="llm.backend: embedded|openai|fake.")] = None,
    base_url: Annotated[str | None, typer.Option(help="llm.base_url: OpenAI-compatible base "
                                                 "URL.")] = None,
    model: Annotated[str | None, typer.Option(help="llm.model: LLM model name.")] = None,
    samples: Annotated[int | None, typer.Option(help="complete.samples: k samples per "
                                                "completion question.")] = None,
    llm_discovery: Annotated[bool, typer.Option(help="discover.use_llm: also ask the LLM for "
                                                "entities (spaCy NER always runs); slower on "
                                                "CPU.")] = False,
    set_: SetOption = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOption = LogFormat.plain,
) -> None:
    """Enrich the shipped demo catalog (60 Wikidata films) with the embedded LLM and score the
    completed facts against the demo's hidden answer key."""
    try:
        settings = load_settings(None, flags={"llm.backend": backend, "llm.base_url": base_url,
                                              "llm.model": model, "complete.samples": samples,
                                              "discover.use_llm": llm_discovery},
                                 assignments=set_)
    except KgenrichError as err:
        _fail(err)
    _setup_logging(verbose, log_format)
    from kgenrich.flows.demo import run_demo

    start = time.perf_counter()
    try:
        result = run_demo(packaged_data.DEMO, out=out, settings=settings)
    except KgenrichError as err:
        _fail(err)
    _print_report(result.report)
    c = Console()
    c.print(f"\n[bold]Demo: completed facts vs the hidden answer key[/] "
            f"({time.perf_counter() - start:.0f} s)")
    for name, pr in result.scores.items():
        c.print(f"  {name:>28}: precision {pr.precision:.2f}  recall {pr.recall:.2f}  "
                f"({pr.correct}/{pr.proposed} proposed correct, key {pr.key_size})")


@app.command()
def query(
    store: Annotated[Path, typer.Argument(help="Graph store folder (Oxigraph).")],
    sparql: Annotated[str, typer.Argument(help="SPARQL query, or a file holding one.")],
    fmt: Annotated[str, typer.Option("--format", help="table|json|csv")] = "table",
    allow_service: Annotated[bool, typer.Option(help="Let SERVICE clauses call other SPARQL "
                                                "endpoints (off: no outbound request).")] = False,
) -> None:
    """Run SPARQL against a kgenrich graph store (prefixes kge:, kgr:, kgt:, rdf:, ... predeclared)."""
    from kgenrich.cli_query import query_command

    try:
        code = query_command(store, sparql, fmt,  # type: ignore[arg-type]
                             allow_service=allow_service)
    except KgenrichError as err:
        _fail(err)
    raise typer.Exit(code)


@app.command()
def push(
    out_dir: Annotated[Path, typer.Argument(help="A run's output folder (graph.nq, retractions.jsonl).")],
    endpoint: Annotated[str | None, typer.Option(help="push.endpoint: Graph Store Protocol URL, e.g. http://127.0.0.1:7878/store (user:password@ allowed, never printed).")] = None,
    default_graph: Annotated[str | None, typer.Option(help="push.default_graph: named graph for graph.nq's default graph (default: the endpoint's default graph).")] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (JSON or TOML).", exists=True)] = None,
    set_: SetOption = [],  # noqa: B006
) -> None:
    """Load a run's named graphs into a SPARQL 1.1 store (Graph Store HTTP Protocol PUT per graph,
    so pushing the same output again changes nothing); retractions are applied."""
    try:
        settings = load_settings(config, flags={"push.endpoint": endpoint,
                                                "push.default_graph": default_graph},
                                 assignments=set_)
        from kgenrich.cli_push import push_command

        push_command(out_dir, settings)
    except KgenrichError as err:
        _fail(err)


recommend_app = typer.Typer(help="RippleNet on kgenrich's exports.", no_args_is_help=True)
app.add_typer(recommend_app, name="recommend")


@recommend_app.command("train")
def recommend_train(
    data_dir: Annotated[Path, typer.Argument(help="RippleNet folder or a run folder with ripplenet/.", exists=True)],
    out_model: Annotated[Path, typer.Option(help="Where to save the trained model.")] = Path("ripplenet.pt"),
    preset: Annotated[str, typer.Option(help="Hyperparameters: movie|book.")] = "movie",
    seed: Annotated[int, typer.Option(help="Seed (split and training).")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    interactions: Annotated[Path | None, typer.Option(help="Ratings, if the export has none.", exists=True)] = None,
) -> None:
    """Train RippleNet on an export and save the model."""
    _setup_logging(False)
    from kgenrich.cli_recommend import train_command

    raise typer.Exit(train_command(data_dir, preset=preset, seed=seed, epochs=epochs,
                                   out_model=out_model, interactions=interactions))


@recommend_app.command("evaluate")
def recommend_evaluate(
    data_dir: Annotated[Path, typer.Argument(help="RippleNet folder or a run folder with ripplenet/.", exists=True)],
    preset: Annotated[str, typer.Option(help="Hyperparameters: movie|book.")] = "movie",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "1,2,3",
    out_json: Annotated[Path | None, typer.Option(help="Write the metrics here.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    interactions: Annotated[Path | None, typer.Option(help="Ratings, if the export has none.", exists=True)] = None,
) -> None:
    """Test AUC/ACC of RippleNet on an export (6:2:2 split per seed)."""
    _setup_logging(False)
    from kgenrich.cli_recommend import evaluate_command

    seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    raise typer.Exit(evaluate_command(data_dir, preset=preset, seeds=seed_list,
                                      out_json=out_json, epochs=epochs,
                                      interactions=interactions))


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KgenrichError as err:
        console.print(f"[bold red]error:[/] {err}")
        sys.exit(err.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
