"""The card's cost and energy: what training and evaluation used, measured, and what `occi plan` expected.

Read from <run>/energy.jsonl (one line per job, occi/energy.py) and <run>/plan.json (occi plan).
Energy is shown only where a counter measured it; a job without one says so. Cost is GPU-hours x the
card's price per GPU-hour (card.price_per_gpu_hour), when one is set.
"""
from __future__ import annotations

from occi import energy
from occi.report.markdown_text import markdown_table
from occi.rundir import RunDir


def _hours(value: float) -> str:
    return f"{value:,.1f}" if value >= 1 else f"{value:.3g}"


def cost_section(cfg, run: RunDir) -> str:
    run = RunDir.of(run)
    totals = energy.totals(energy.read(run.energy))
    price, currency = cfg.card.price_per_gpu_hour, cfg.card.currency
    lines = []
    if totals:
        rows = []
        for job, entry in totals.items():
            if entry["energy_kwh"] is None:
                measured = "not measured (" + "; ".join(m.removeprefix("not measured: ") for m in entry["methods"]) + ")"
            else:
                part = f", {entry['unmeasured']} of {entry['jobs']} job(s) not measured" if entry["unmeasured"] else ""
                measured = f"{entry['energy_kwh']:.3g} kWh ({'; '.join(entry['methods'])}{part})"
            cost = f"{entry['gpu_hours'] * price:,.2f} {currency}" if price is not None else "no price set"
            rows.append((job, entry["jobs"], _hours(entry["hours"]), _hours(entry["gpu_hours"]),
                         _hours(entry["cpu_hours"]), measured, cost))
        lines.append(markdown_table(["job", "jobs", "wall hours", "GPU-hours", "CPU-hours (process time)", "energy",
                             "cost"], rows))
        if price is None:
            lines += ["", "Set `card: {price_per_gpu_hour: ...}` in the config to show the cost."]
    else:
        lines.append(f"_Not available: no job recorded its energy and hours in this run ({run.energy.name})._")
    plan = run.read_json(run.plan)
    if plan:
        actual = totals.get("train")
        rows = [("GPU-hours", _hours(plan["gpu_hours"]), _hours(actual["gpu_hours"]) if actual else "n/a"),
                ("wall hours", _hours(plan["wall_hours"]), _hours(actual["hours"]) if actual else "n/a"),
                ("energy (kWh)", f"{plan['energy_kwh']:.3g}" if plan.get("energy_kwh") is not None else "not estimated",
                 f"{actual['energy_kwh']:.3g}" if actual and actual["energy_kwh"] is not None else "not measured")]
        from occi.slurm.estimate import measured_mfu  # loads pyarrow: only when used

        mfu, _ = measured_mfu(run)
        rows.append(("MFU", f"{plan['mfu']:.3f}", f"{mfu:.3f}" if mfu is not None else
                     "not measured (no device peak known to training)"))
        if plan.get("cost") is not None:
            rows.append((f"cost ({plan['currency']})", f"{plan['cost']:,.2f}",
                         f"{actual['gpu_hours'] * plan['price_per_gpu_hour']:,.2f}" if actual else "n/a"))
        lines += ["", f"Training, planned (`occi plan` for {plan['cluster']}: {plan['gpus']} x "
                  f"{plan.get('gpu_model') or 'GPU'}, MFU {plan['mfu']:.2f}, {plan['mfu_source']}) and as run:", "",
                  markdown_table(["", "planned", "actual"], rows)]
        if actual and actual["gpu_hours"] == 0:
            lines += ["", "The run trained without GPUs here, so its GPU-hours are 0 and the plan is not comparable."]
    return "\n".join(lines)
