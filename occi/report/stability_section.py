"""The model card's part on training stability: every step the stability guard rejected (a NaN or
infinite loss or gradient norm, a loss spike), what was done (skip, rollback, stop), and which
documents of which languages the offending batch held (train/stability.json)."""
from __future__ import annotations

from pathlib import Path

from occi.rundir import RunDir
from occi.train.stability import read_events

ACTIONS = {"skip": "update dropped, batch skipped", "rollback": "rolled back to step {rolled_back_to}, batch skipped",
           "stop": "training stopped"}


def stability_section(cfg, run_dir: Path) -> list[str]:
    """["## Training stability", text]: the guard's settings and its events (none is news too)."""
    run = RunDir.of(run_dir)
    guard = cfg.train.stability
    if guard.policy == "off":
        return ["## Training stability", "The stability guard was off: a NaN or a loss spike would have trained on."]
    events = read_events(run.stability_events)["events"]
    settings = (f"Every step was checked before its update (policy `{guard.policy}`): a NaN or infinite loss or "
                f"gradient norm, or a loss more than {guard.spike_zscore:g} standard deviations above the mean of the "
                f"last {guard.spike_window} steps.")
    if guard.skip_batches:
        settings += f" Batches left out of the data order from the start: {', '.join(map(str, guard.skip_batches))}."
    if not events:
        return ["## Training stability", settings + " No step was rejected."]
    rows = ["| step | batch | why | action | languages | documents |", "|---|---|---|---|---|---|"]
    for event in events:
        action = ACTIONS.get(event["policy"], event["policy"]).format(rolled_back_to=event.get("rolled_back_to"))
        documents = "; ".join(f"{code}: {', '.join(map(str, docs))}" for code, docs in event["documents"].items())
        rows.append(f"| {event['step']} | {event['batch']} | {event['reason'].replace('|', '/')} | {action} | "
                    f"{', '.join(event['languages'])} | {documents} |")
    return ["## Training stability", settings + f" {len(events)} step(s) rejected:\n\n" + "\n".join(rows)
            + "\n\nDocument numbers count from 0 within each language's training split (data/<lang>_text_document)."]
