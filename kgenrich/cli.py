"""The `kgenrich` command line: init, run, serve, export, demo, query, push (and recommend).

Loads a run's inputs, mapping and settings (`kgenrich.settings.load_config`: `--set` > flags >
environment `KGENRICH_*` > `--config` file > defaults) before any expensive step and hands them
to the Prefect flow. Every KgenrichError and every usage mistake becomes a one-line message and
its exit code: 2 for a mistake in the inputs, settings or environment (a locked output folder
included), 3 for a run that ran but did not do its work (no LLM answer at all, or too many
failed items); a crash is 1. Importing this module loads neither Prefect nor torch (`--help`
stays fast).
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import contextlib  # noqa: E402
import enum  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, get_args  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from kgenrich import data as packaged_data  # noqa: E402
from kgenrich.cli_logging import LogFormat, log_handler  # noqa: E402
from kgenrich.errors import KgenrichError  # noqa: E402
from kgenrich.settings import (  # noqa: E402
    CatalogFormatName,
    DecisionName,
    ExportFormat,
    LLMSettings,
    RunConfig,
    RunnerKind,
    SeedFormatName,
    SettingsError,
    load_config,
    load_settings,
    setting_default,
)

DEFAULT_ONTOLOGY = packaged_data.ontology("movies")
#: `kgenrich query --format` (`kgenrich.cli_query.OutputFormat`, which imports rdflib; a test
#: keeps them equal) and `recommend --preset` (`kgenrich.recsys.params.PRESETS`, torch).
QUERY_FORMATS = ("table", "json", "csv")
PRESETS = ("movie", "book")

console = Console(stderr=True)


class _OneLineUsageErrors(TyperGroup):
    """Click's usage errors (a bad choice, a missing file, a malformed option) as one line and
    exit code 2, like every other mistake, instead of a usage box."""

    # Typer vendors Click (typer._click): its exceptions are not the `click` package's.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as err:
            command = err.ctx.command_path if err.ctx is not None else ctx.command_path
            message = err.format_message().removeprefix("Value error, ").replace(
                ": Value error, ", ": ")
            console.print(f"[bold red]error:[/] {escape(command)}: {escape(message)}",
                          soft_wrap=True)
            raise typer.Exit(2) from err


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_OneLineUsageErrors,
                  help="Knowledge-graph enrichment for item catalogs.")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"kgenrich {version('kgenrich')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print kgenrich's version and exit.")] = False,
) -> None:
    """Knowledge-graph enrichment for item catalogs."""


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
        if not self.verbose and _reports_our_error(record):
            # Prefect logs a flow's exception with its traceback; for a KgenrichError the CLI
            # prints the one line that says what to fix, and the traceback would bury it.
            return False
        return record.levelno >= (logging.WARNING if self.verbose else logging.ERROR)


def _reports_our_error(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return isinstance(error, KgenrichError) or (
        record.name.startswith("prefect") and "kgenrich.errors." in record.getMessage())


def _fail(err: Exception) -> None:
    # one line however narrow the terminal; a message may hold [brackets]
    console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(err, "exit_code", 2)) from err


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise SettingsError([("mapping.attributes", f"{what} {p!r}: expected COLUMN=RELATION")])
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _flag(dotted: str, help: str, *names: str, shown: str | None = None, **kw: Any) -> Any:
    """An option that sets the setting `dotted`. It defaults to None ("not given": the config
    file, the environment or the default holds), and --help shows the setting's default."""
    default = setting_default(dotted)
    if shown is None:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else (
            "" if default is None else str(default))
    return typer.Option(*names, help=f"{dotted}: {help}", show_default=shown or False, **kw)


def _choices(name: str, values: tuple[str, ...]) -> type[enum.StrEnum]:
    """A str Enum of `values`: Typer lists its choices in --help and rejects any other value."""
    # the functional API, which mypy types as a member
    return enum.StrEnum(name, {v: v for v in values})  # type: ignore[return-value]


if typing.TYPE_CHECKING:  # members are strs; Typer reads the Enums at run time
    CatalogFormatChoice: typing.TypeAlias = str
    SeedFormatChoice: typing.TypeAlias = str
    BackendChoice: typing.TypeAlias = str
    QueryFormatChoice: typing.TypeAlias = str
    PresetChoice: typing.TypeAlias = str
    RunnerChoice: typing.TypeAlias = str
else:
    CatalogFormatChoice = _choices("CatalogFormatChoice", get_args(CatalogFormatName))
    SeedFormatChoice = _choices("SeedFormatChoice", get_args(SeedFormatName))
    BackendChoice = _choices("BackendChoice", get_args(LLMSettings.model_fields["backend"].annotation))
    QueryFormatChoice = _choices("QueryFormatChoice", QUERY_FORMATS)
    PresetChoice = _choices("PresetChoice", PRESETS)
    RunnerChoice = _choices("RunnerChoice", get_args(RunnerKind))


SET_HELP = (
    "Any setting as section.key=VALUE (repeatable), e.g. complete.samples=1, "
    "verify.model=RotatE, llm.base_url=http://127.0.0.1:8000/v1, "
    "export.formats='[\"turtle\"]', inputs.catalog=items.csv. VALUE is read as JSON when it "
    "parses, else as a string. Wins over the flags, KGENRICH_* variables and --config; a "
    "misspelt key or a bad value stops before any work. Every setting: `kgenrich init`."
)
#: The `--set` option, declared once for every command that loads settings.
SetOption = Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)]
CONFIG_HELP = ("Config file (TOML, YAML or JSON) with inputs, mapping and settings sections; "
               "`kgenrich init` writes one listing every key. Relative paths in it are read "
               "against its folder. Below KGENRICH_* variables, flags and --set.")
#: The `--config` option of the commands that load settings.
ConfigOption = Annotated[Path | None, typer.Option(help=CONFIG_HELP, exists=True, dir_okay=False)]
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
    catalog: Annotated[Path | None, _flag("inputs.catalog", "Item catalog: CSV, TSV, JSONL, "
                                          "Parquet, RecBole .item. Required, here or in the "
                                          "config file.", exists=True, dir_okay=False)] = None,
    ontology: Annotated[Path | None, _flag("inputs.ontology", "Ontology JSON/TOML.", exists=True,
                                           shown="the packaged movies ontology")] = None,
    out: Annotated[Path | None, _flag("inputs.out", "Output folder. Its exports are swapped in "
                                      "together (written atomically); the state store and "
                                      "review verdicts in it are kept.")] = None,
    id_col: Annotated[str | None, _flag("mapping.id", "Catalog id column.")] = None,
    title_col: Annotated[str | None, _flag("mapping.title", "Catalog title column.")] = None,
    text_col: Annotated[list[str], _flag("mapping.text", "Free-text column (repeatable).",
                                         shown="none")] = [],  # noqa: B006
    attr: Annotated[list[str], _flag("mapping.attributes", "COLUMN=RELATION (repeatable; "
                                     "replaces the file's).", shown="none")] = [],  # noqa: B006
    list_sep: Annotated[str | None, _flag("mapping.list_separator", "Separator inside list "
                                          "cells.")] = None,
    catalog_format: Annotated[CatalogFormatChoice | None, _flag("mapping.format",
                                                                "Catalog format.")] = None,
    seed: Annotated[Path | None, _flag("inputs.seed", "Seed KG file.", exists=True)] = None,
    seed_format: Annotated[SeedFormatChoice | None, _flag("inputs.seed_format",
                                                          "Seed KG format.")] = None,
    seed_link: Annotated[Path | None, _flag("inputs.seed_link", "RecBole .link / RippleNet item "
                                            "index.", exists=True)] = None,
    interactions: Annotated[Path | None, _flag("inputs.interactions", "User-item ratings for "
                                               "ratings_final.txt and RecBole .inter; a copy is "
                                               "kept in the output folder for `kgenrich "
                                               "export`.", exists=True)] = None,
    config: ConfigOption = None,
    set_: SetOption = [],  # noqa: B006
    backend: Annotated[BackendChoice | None, _flag("llm.backend", "LLM backend.")] = None,
    base_url: Annotated[str | None, _flag("llm.base_url", "OpenAI-compatible base URL.")] = None,
    model: Annotated[str | None, _flag("llm.model", "LLM model name.")] = None,
    samples: Annotated[int | None, _flag("complete.samples", "k samples per completion.")] = None,
    max_items: Annotated[int | None, _flag("complete.max_items", "Complete at most N items.",
                                           shown="all")] = None,
    seed_skip_bad: Annotated[bool, _flag("inputs.seed_on_error", "Skip malformed seed lines "
                                         "(counted in the report) instead of failing: "
                                         "seed_on_error=skip.", "--seed-skip-bad",
                                         shown="off")] = False,
    run_name: Annotated[str | None, _flag("inputs.run_name", "Name of the run (report folder).",
                                          shown="a UTC timestamp")] = None,
    store: Annotated[Path | None, _flag("inputs.store", "Oxigraph graph store folder to load the "
                                        "graph into (query it with `kgenrich query`).")] = None,
    push: Annotated[str | None, _flag("push.endpoint", "After the export, push graph.nq's graphs "
                                      "to this Graph Store Protocol endpoint (see `kgenrich "
                                      "push`).", "--push", metavar="URL")] = None,
    task_runner: Annotated[RunnerChoice | None, _flag("task_runner.kind", "Where the LLM stages' chunks run: a thread pool here, Dask or Ray workers (each builds its own LLM client: llm.concurrency is per worker). dask and ray need a Prefect server (PREFECT_API_URL) and their extra.", "--task-runner")] = None,
    address: Annotated[str | None, _flag("task_runner.address", "An existing Dask scheduler (tcp://host:8786) or Ray cluster (ray://host:10001) instead of a local one.", "--address")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only check the inputs and settings "
                                          "and print what the run would ask (items, gaps, "
                                          "estimated LLM calls); starts no Prefect, no LLM.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOption = LogFormat.plain,
) -> None:
    """Enrich a catalog (and optional seed KG) and write every export.

    Inputs, mapping and settings come from defaults, --config, KGENRICH_* variables, the flags
    and --set, each later one winning: e.g. `kgenrich run --config kgenrich.toml --set
    verify.model=RotatE`."""
    opts = locals()
    from kgenrich.runs.health import incomplete
    from kgenrich.runs.lock import output_lock

    with contextlib.ExitStack() as held:
        try:
            run_config = _run_config(opts)  # first: a bad setting fails before Prefect loads
            settings = run_config.settings
            if not dry_run:  # one run per --out: a second one stops here, before Prefect/LLM
                held.enter_context(output_lock(run_config.inputs.out))
            _preflight(opts, run_config)
        except KgenrichError as err:
            _fail(err)
        _setup_logging(verbose, log_format)
        from kgenrich.cli_flowrun import run_enrich
        from kgenrich.cli_progress import progress_bars

        try:
            with progress_bars(log_format, console):
                report, url = run_enrich(_inputs(run_config), settings)
        except KgenrichError as err:
            _fail(err)
        _print_report(report)
        _print_where(run_config.inputs.out, url)
        problem = incomplete(report.extra["health"],
                             max_failed_item_share=settings.max_failed_item_share)
        if problem is not None:  # exit 3: the run ran but did not do its work
            _fail(problem)


#: `run`/`serve` options -> the setting each sets.
_RUN_FLAGS = {
    "catalog": "inputs.catalog", "ontology": "inputs.ontology", "out": "inputs.out",
    "seed": "inputs.seed", "seed_format": "inputs.seed_format", "seed_link": "inputs.seed_link",
    "interactions": "inputs.interactions", "run_name": "inputs.run_name", "store": "inputs.store",
    "id_col": "mapping.id", "title_col": "mapping.title", "list_sep": "mapping.list_separator",
    "catalog_format": "mapping.format", "backend": "llm.backend", "base_url": "llm.base_url",
    "model": "llm.model", "samples": "complete.samples", "max_items": "complete.max_items",
    "push": "push.endpoint", "task_runner": "task_runner.kind", "address": "task_runner.address",
}


def _run_config(o: dict[str, Any]) -> RunConfig:
    """The run's inputs, mapping and settings from `run`/`serve` options.

    Raises:
        SettingsError: a bad setting or --attr, or no catalog in the flags or the file.
    """
    flags: dict[str, Any] = {dotted: _plain(o[name]) for name, dotted in _RUN_FLAGS.items()}
    # an empty list or an unset switch is "not given", so the file's value holds
    flags["mapping.text"] = tuple(o["text_col"]) or None
    flags["mapping.attributes"] = _parse_pairs(o["attr"], "--attr") if o["attr"] else None
    flags["inputs.seed_on_error"] = "skip" if o["seed_skip_bad"] else None
    run_config = load_config(o["config"], flags=flags, assignments=o["set_"])
    if run_config.inputs.catalog is None:
        raise SettingsError([("inputs.catalog", "no catalog: give --catalog or set catalog in "
                                                "the config file's [inputs]")])
    return run_config


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _preflight(o: dict[str, Any], run_config: RunConfig) -> None:
    """Check the inputs before Prefect loads (runs/preflight.py); with --dry-run print what the
    run would ask and exit 0."""
    from kgenrich.cli_prefect import configured_api_url
    from kgenrich.cli_preflight import check_state, preflight_inputs, print_preflight
    from kgenrich.flows.runners import check_runner

    inputs = run_config.inputs
    assert inputs.catalog is not None  # _run_config checked it
    # first: a missing extra or Prefect server is found before the inputs are read
    check_runner(run_config.settings, api_url=configured_api_url(os.environ))
    check_state(run_config.settings.state_path or inputs.out / "state.sqlite")
    result = preflight_inputs(
        catalog=inputs.catalog, mapping=run_config.mapping.catalog_mapping(),
        ontology=inputs.ontology or DEFAULT_ONTOLOGY, seed=inputs.seed,
        seed_format=inputs.seed_format, seed_link=inputs.seed_link,
        seed_on_error=inputs.seed_on_error, settings=run_config.settings)
    print_preflight(result, console=console, dry_run=o["dry_run"])
    result.raise_for_problems()
    if o["dry_run"]:
        raise typer.Exit(0)


def _inputs(run_config: RunConfig) -> Any:
    """The flow's inputs from a loaded run config."""
    from kgenrich.flows.enrich import EnrichInputs

    inputs = run_config.inputs
    return EnrichInputs(
        catalog=inputs.catalog, ontology=inputs.ontology or DEFAULT_ONTOLOGY,
        out_dir=inputs.out, seed=inputs.seed, seed_format=inputs.seed_format,
        seed_link=inputs.seed_link, interactions=inputs.interactions, run_name=inputs.run_name,
        store=inputs.store, seed_on_error=inputs.seed_on_error, review=inputs.review,
        mapping=run_config.mapping.catalog_mapping(),
    )


def _serve_options(
    cron: Annotated[str, typer.Option(help="Cron schedule, e.g. '0 3 * * *'.")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="Deployment name (enrich/<name>).")] = "scheduled",
    timezone: Annotated[str | None, typer.Option(help="IANA time zone of the schedule.")] = None,
    pause_on_shutdown: Annotated[bool, typer.Option("--pause-on-shutdown", help="Pause the schedule when this process stops (default: it stays active, and a restarted serve picks it up).")] = False,
) -> None:
    """Only a signature: the options `serve` adds to every `run` option."""


def serve(**opts: Any) -> None:
    """Serve the enrich flow on a cron schedule (needs a Prefect server: PREFECT_API_URL).

    Takes every `run` option; the stored deployment parameters never contain the API key, which
    each run reads from KGENRICH_LLM__API_KEY."""
    try:
        run_config = _run_config(opts)
        settings = run_config.settings
        _preflight(opts, run_config)
    except KgenrichError as err:
        _fail(err)
    _setup_logging(opts["verbose"], opts["log_format"])
    from kgenrich.flows.serve import serve_command

    try:
        code = serve_command(_inputs(run_config), settings, cron=opts["cron"], name=opts["name"],
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
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Drop every LLM-added triple.")] = False,
    interactions: Annotated[Path | None, typer.Option(
        help="User-item ratings; default: the copy the run kept.", exists=True,
        dir_okay=False)] = None,
    config: ConfigOption = None,
    set_: SetOption = [],  # noqa: B006
) -> None:
    """Re-export a finished run (from its triples.jsonl) in other formats or with other filters.

    Uses the run's item order and interactions (recorded in the run folder), so the RippleNet
    ids and ratings match the run's; the exports are swapped into --out together."""
    try:
        settings = load_settings(config, flags={"export.formats": tuple(formats) or None,
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
    backend: Annotated[BackendChoice | None, _flag("llm.backend", "LLM backend.")] = None,
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
        settings = load_settings(None, flags={"llm.backend": _plain(backend), "llm.base_url": base_url,
                                              "llm.model": model, "complete.samples": samples,
                                              "discover.use_llm": llm_discovery},
                                 assignments=set_)
    except KgenrichError as err:
        _fail(err)
    _setup_logging(verbose, log_format)
    from kgenrich.cli_progress import progress_bars
    from kgenrich.flows.demo import run_demo

    start = time.perf_counter()
    try:
        with progress_bars(log_format, console):
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
    fmt: Annotated[QueryFormatChoice, typer.Option("--format", help="Output format.")] = "table",
    allow_service: Annotated[bool, typer.Option(help="Let SERVICE clauses call other SPARQL "
                                                "endpoints (off: no outbound request).")] = False,
) -> None:
    """Run SPARQL against a kgenrich graph store (prefixes kge:, kgr:, kgt:, rdf:, ... predeclared)."""
    from kgenrich.cli_query import query_command

    try:
        code = query_command(store, sparql, _plain(fmt), allow_service=allow_service)
    except KgenrichError as err:
        _fail(err)
    raise typer.Exit(code)


@app.command()
def push(
    out_dir: Annotated[Path, typer.Argument(help="A run's output folder (graph.nq, retractions.jsonl).")],
    endpoint: Annotated[str | None, typer.Option(help="push.endpoint: Graph Store Protocol URL, e.g. http://127.0.0.1:7878/store (user:password@ allowed, never printed).")] = None,
    default_graph: Annotated[str | None, typer.Option(help="push.default_graph: named graph for graph.nq's default graph (default: the endpoint's default graph).")] = None,
    config: ConfigOption = None,
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


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for kgenrich.toml (created if "
                                              "missing).", file_okay=False)] = Path("."),
    demo: Annotated[bool, typer.Option("--demo", help="Fill in the packaged demo's inputs and "
                                       "mapping (60 films), so `kgenrich run --config "
                                       "DIR/kgenrich.toml` runs it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing "
                                        "kgenrich.toml.")] = False,
) -> None:
    """Write a commented kgenrich.toml listing every input, mapping key and setting with its
    default and description; `kgenrich run --config kgenrich.toml` then needs no other flag."""
    from kgenrich.cli_init import init_command

    try:
        path = init_command(directory, demo=demo, force=force)
    except KgenrichError as err:
        _fail(err)
    Console(soft_wrap=True).print(f"wrote {path}; run it with: kgenrich run --config {path}",
                                  highlight=False)


recommend_app = typer.Typer(help="RippleNet on kgenrich's exports.", no_args_is_help=True)
app.add_typer(recommend_app, name="recommend")


@recommend_app.command("train")
def recommend_train(
    data_dir: Annotated[Path, typer.Argument(help="RippleNet folder or a run folder with ripplenet/.", exists=True)],
    out_model: Annotated[Path, typer.Option(help="Where to save the trained model.")] = Path("ripplenet.pt"),
    preset: Annotated[PresetChoice, typer.Option(help="Hyperparameters (the RippleNet "
                                                 "paper's).")] = "movie",
    seed: Annotated[int, typer.Option(help="Seed (split and training).")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    interactions: Annotated[Path | None, typer.Option(help="Ratings, if the export has none.", exists=True)] = None,
) -> None:
    """Train RippleNet on an export and save the model."""
    _setup_logging(False)
    from kgenrich.cli_recommend import train_command

    raise typer.Exit(train_command(data_dir, preset=_plain(preset), seed=seed, epochs=epochs,
                                   out_model=out_model, interactions=interactions))


@recommend_app.command("evaluate")
def recommend_evaluate(
    data_dir: Annotated[Path, typer.Argument(help="RippleNet folder or a run folder with ripplenet/.", exists=True)],
    preset: Annotated[PresetChoice, typer.Option(help="Hyperparameters (the RippleNet "
                                                 "paper's).")] = "movie",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "1,2,3",
    out_json: Annotated[Path | None, typer.Option(help="Write the metrics here.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    interactions: Annotated[Path | None, typer.Option(help="Ratings, if the export has none.", exists=True)] = None,
) -> None:
    """Test AUC/ACC of RippleNet on an export (6:2:2 split per seed)."""
    _setup_logging(False)
    from kgenrich.cli_recommend import evaluate_command

    seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    raise typer.Exit(evaluate_command(data_dir, preset=_plain(preset), seeds=seed_list,
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
