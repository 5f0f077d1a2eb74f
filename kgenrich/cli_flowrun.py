"""One `kgenrich run` as a Prefect flow run an operator can find: named after `--run-name`,
tagged `kgenrich` and the catalog's file stem, and its UI address when a server is configured."""

from __future__ import annotations

from typing import Any

from prefect import Flow, tags
from prefect.client.schemas.objects import FlowRun
from prefect.states import State
from prefect.utilities.urls import url_for

from kgenrich.flows.enrich import EnrichInputs, enrich
from kgenrich.pipeline.report import RunReport

TAG = "kgenrich"


def run_tags(inputs: EnrichInputs) -> tuple[str, ...]:
    """The flow run's tags: `kgenrich` and the catalog's name (its file stem)."""
    return (TAG, inputs.catalog.stem)


def run_enrich(inputs: EnrichInputs, settings: Any) -> tuple[RunReport, str | None]:
    """Run the enrich flow labelled for the Prefect UI.

    Returns:
        The run report and the flow run's UI address, None without a Prefect server (the
        temporary one a run starts has no UI worth pointing at: it dies with the run).
    """
    seen: list[FlowRun] = []

    def remember(flow: Flow[Any, Any], flow_run: FlowRun, state: State) -> None:
        seen.append(flow_run)  # its id exists only once Prefect has created the run

    # Named and tagged here, not in the flow body: served deployments name their own runs.
    flow = enrich.with_options(flow_run_name=inputs.run_name, on_completion=[remember],
                               on_failure=[remember])
    with tags(*run_tags(inputs)):
        report = flow(inputs, settings)
    return report, flow_run_url(seen[-1] if seen else None)


def flow_run_url(flow_run: FlowRun | None) -> str | None:
    """The flow run's UI address, when PREFECT_UI_URL (or PREFECT_API_URL) is configured."""
    from prefect.settings import get_current_settings

    if flow_run is None or get_current_settings().ui_url is None:
        return None
    return url_for(flow_run)
