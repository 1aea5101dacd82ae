"""The ablation report: per-phase and per-organ Dice tables, paired Wilcoxon tests, plots, as markdown.

Unit of analysis: a test case. A case's value is its Dice averaged over organs (and over seeds
when there are several), so the tests pair the arms on the same cases. p-values come from
``dccseg.evaluation.wilcoxon_compare`` (two-sided signed-rank, alpha 0.01); with few cases per
phase the per-phase tests have little power, which the report says next to them. The verdict for the
release model (dcc against none on the unseen-body test cases) uses p < 0.05.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dccseg.errors import DccsegError
from dccseg.evaluation import wilcoxon_compare
from dccseg.fileutil import atomic_output, ensure_writable_dir
from dccseg.organs import ORGANS

from .plots import phase_bar_chart, organ_heat_map
from .runner import RESULTS_FILE

PHASE_ORDER = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")
REPORT_FILE = "report.md"
BASELINE = "none"
RELEASE_ALPHA = 0.05


def case_values(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """arm -> case -> {"phase", "dice_mean", "organs": {key: Dice}}, averaged over seeds."""
    gathered: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for run in results["runs"]:
        for record in run["cases"]:
            entry = gathered[run["arm"]].setdefault(record["case"], {"phase": record["phase"], "means": [], "organs": defaultdict(list)})
            if record["dice_mean"] is not None:
                entry["means"].append(record["dice_mean"])
            for organ, value in record["organs"].items():
                entry["organs"][organ].append(value)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for arm, cases in gathered.items():
        out[arm] = {
            case: {"phase": e["phase"], "dice_mean": float(np.mean(e["means"])) if e["means"] else None,
                   "organs": {k: float(np.mean(v)) for k, v in e["organs"].items()}}
            for case, e in cases.items()
        }
    return out


def arms_of(results: dict[str, Any]) -> list[str]:
    return [a["name"] for a in results["plan"]["arms"]]


def phase_table(values: dict[str, dict[str, dict[str, Any]]], arms: list[str]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """The phases present and arm -> {"all" and each phase: mean of case Dice}."""
    phases = [p for p in PHASE_ORDER if any(c["phase"] == p for c in next(iter(values.values())).values())]
    table: dict[str, dict[str, float | None]] = {}
    for arm in arms:
        cases = values[arm].values()
        row = {"all": _mean([c["dice_mean"] for c in cases])}
        for phase in phases:
            row[phase] = _mean([c["dice_mean"] for c in cases if c["phase"] == phase])
        table[arm] = row
    return phases, table


def organ_table(values: dict[str, dict[str, dict[str, Any]]], arms: list[str]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """The organs evaluated and arm -> organ -> mean Dice over test cases."""
    present = {k for arm in arms for c in values[arm].values() for k in c["organs"]}
    organs = [o.key for o in ORGANS if o.key in present]
    return organs, {arm: {k: _mean([c["organs"].get(k) for c in values[arm].values()]) for k in organs} for arm in arms}


def paired(values: dict[str, dict[str, dict[str, Any]]], a: str, b: str, phase: str | None = None) -> dict[str, Any]:
    """Wilcoxon of arm ``a`` against ``b`` on the cases both have a value for (optionally of one phase)."""
    cases = sorted(
        c for c in set(values[a]) & set(values[b])
        if values[a][c]["dice_mean"] is not None and values[b][c]["dice_mean"] is not None and (phase is None or values[a][c]["phase"] == phase)
    )
    return wilcoxon_compare([values[a][c]["dice_mean"] for c in cases], [values[b][c]["dice_mean"] for c in cases])


def release_verdict(values: dict[str, dict[str, dict[str, Any]]], arm: str = "dcc") -> tuple[str, str]:
    """(winner, one-line verdict) of ``arm`` against no pretraining on the test cases; a tie (p >= 0.05) goes to the cheaper none."""
    result = paired(values, arm, BASELINE)
    if not result["n"]:
        return BASELINE, f"{arm} vs {BASELINE}: no paired test cases, so no evidence for pretraining; the release model should use {BASELINE} (no pretraining)."
    p = result["p_value"]
    measurable = p is not None and p < RELEASE_ALPHA
    winner = arm if measurable and result["mean_difference"] > 0 else BASELINE
    finding = f"{winner} is better" if measurable else "no measurable difference"
    use = f"{arm} pretraining" if winner == arm else f"{BASELINE} (no pretraining{'' if measurable else ', the cheaper one'})"
    return winner, (f"{arm} vs {BASELINE} on unseen bodies: mean Dice difference {result['mean_difference']:+.3f} ({arm} - {BASELINE}, n = {result['n']}), "
                    f"p = {_p(p)}: {finding}; the release model should use {use}.")


def real_case_ids(results: dict[str, Any]) -> list[str]:
    """The ids of the real scans in the test set."""
    return [scan["id"] for scan in results["plan"]["data"]["real_test"]]


def write_report(folder: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and its PNG plots (into ``out_dir``, default the ablation folder)."""
    folder = Path(folder)
    out = Path(out_dir) if out_dir is not None else folder
    ensure_writable_dir(out)
    results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    if "train_bodies" not in results["plan"]["data"]:
        raise DccsegError(f"{folder} is an ablation from before the split by body (it trained and tested on one body); rerun 'dccseg ablation run' into a new folder")
    values = case_values(results)
    arms = arms_of(results)
    phases, by_phase = phase_table(values, arms)
    organs, by_organ = organ_table(values, arms)
    phase_bar_chart(by_phase, arms, phases, out / "dice_by_phase.png")
    organ_heat_map(by_organ, arms, organs, out / "dice_by_organ.png")
    text = render(results, values, arms, phases, by_phase, organs, by_organ)
    with atomic_output(out / REPORT_FILE) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out / REPORT_FILE


def render(results: dict[str, Any], values: dict[str, Any], arms: list[str], phases: list[str], by_phase: dict[str, Any], organs: list[str], by_organ: dict[str, Any]) -> str:
    plan = results["plan"]
    lines = [f"# DCC-CL ablation ({plan['name']} configuration)", ""]
    if results.get("command"):
        lines += ["Reproduce with:", "", "```", results["command"], "```", ""]
    lines += _setup(results, values)
    if "dcc" in arms and BASELINE in arms:
        lines += ["## Verdict for the release model", "",
                  f"dcc against none on every test case (unseen bodies and real scans); a difference counts at p < {RELEASE_ALPHA}, and a tie goes to none, "
                  "the cheaper.", "", release_verdict(values)[1], ""]
    lines += ["## Mean Dice per phase", "", "Mean over test cases of the per-case Dice (averaged over organs and seeds).", ""]
    lines += _table(["arm", "all", *phases], [[arm, *(by_phase[arm][k] for k in ("all", *phases))] for arm in arms])
    lines += ["", "![Dice per arm and phase](dice_by_phase.png)", ""]
    lines += _real_cases(values, arms, real_case_ids(results))
    lines += _tests(values, arms, phases)
    lines += ["## Dice per organ", "", "Mean over test cases.", ""]
    lines += _table(["arm", *organs], [[arm, *(by_organ[arm][k] for k in organs)] for arm in arms])
    lines += ["", "![Dice per arm and organ](dice_by_organ.png)", ""]
    lines += _pretraining(results, arms)
    lines += _verdict(by_phase, arms, phases, values, plan["data"]["train"])
    return "\n".join(lines) + "\n"


def _setup(results: dict[str, Any], values: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    data = plan["data"]
    cases = next(iter(values.values()))
    test_phases = {p: sum(1 for c in cases.values() if c["phase"] == p) for p in PHASE_ORDER}
    real = data["real_test"]
    real_text = "; ".join(f"{s['id']} ({s['phase']}, {s['ct']}, labels {s['labels']})" for s in real) if real else "none given"
    return [
        "## Setup", "",
        f"* Training preset `{plan['preset']}` with overrides `{json.dumps(plan['overrides'], sort_keys=True)}`, seeds {plan['seeds']}; every arm uses the same data, budget and seeds.",
        f"* Body split: training bodies {', '.join(_used(data['train_bodies'], data['train']))}; test bodies {', '.join(_used(data['test_bodies'], data['test']))}"
        f" (never trained on); real test scans: {real_text}.",
        f"* Training data: synthetic CT rendered from the training bodies in turn, per phase {json.dumps(data['train'])} at {data['spacing']} mm.",
        f"* Test data ({len(cases)} cases): synthetic CT rendered from the test bodies in turn, per phase {json.dumps(data['test'])}"
        + (f", plus {len(real)} real scan(s) in their own phase." if real else "."),
        f"  Test cases per phase: {', '.join(f'{p} {n}' for p, n in test_phases.items() if n)}.",
        "* Attention channel: ground truth on the coarse grid, degraded (random dilation/erosion/shift per organ) with seeds shared by all arms, for training and test.",
        "* Phase augmentation is off, so what the network knows about a phase comes from the data (and, for the pretrained arms, the pretraining).",
        f"* Arms: {', '.join(_arm_text(a) for a in plan['arms'])}.",
        f"* Wall time of the whole run: {results.get('seconds_total', 0) / 60:.1f} min with {results.get('threads')} torch thread(s){'; ' + results['machine'] if results.get('machine') else ''}.",
        "",
    ]


def _used(bodies: list[str], counts: dict[str, int]) -> list[str]:
    """The bodies a split's synthetic cases were rendered from (drawn in turn, so the first ``count`` of them)."""
    return bodies[: sum(counts.values())]


def _real_cases(values: dict[str, Any], arms: list[str], real: list[str]) -> list[str]:
    """Mean Dice per arm over the real scans alone, and per scan."""
    if not real:
        return []
    lines = ["## Real scans", "", "Mean Dice over the real test scans alone (averaged over organs and seeds), and per scan.", ""]
    rows = [[arm, _mean([values[arm].get(i, {}).get("dice_mean") for i in real]), *(values[arm].get(i, {}).get("dice_mean") for i in real)] for arm in arms]
    return lines + _table(["arm", "real mean", *real], rows) + [""]


def _tests(values: dict[str, Any], arms: list[str], phases: list[str]) -> list[str]:
    lines = ["## Paired Wilcoxon tests", "", "Two-sided signed-rank tests on per-case mean Dice; difference = arm - other; alpha 0.01.", ""]
    if BASELINE in arms:
        rows = []
        for arm in arms:
            if arm == BASELINE:
                continue
            overall = paired(values, arm, BASELINE)
            rows.append([arm, overall["n"], overall["mean_difference"], _p(overall["p_value"]), *(_p(paired(values, arm, BASELINE, p)["p_value"]) for p in phases)])
        lines += ["### Against no pretraining", ""]
        lines += _table(["arm", "n", "mean diff", "p (all)", *(f"p ({p})" for p in phases)], rows)
        lines += [""]
    lines += ["### Between arms (all test cases)", "", "p-value of the row arm against the column arm (mean difference in brackets).", ""]
    rows = []
    for a in arms:
        row: list[Any] = [a]
        for b in arms:
            if a == b:
                row.append("-")
                continue
            result = paired(values, a, b)
            p = _p(result["p_value"])
            row.append(f"{p} ({result['mean_difference']:+.3f})" if result["mean_difference"] is not None else p)
        rows.append(row)
    lines += _table(["", *arms], rows)
    notes = {paired(values, a, BASELINE)["note"] for a in arms if a != BASELINE and BASELINE in arms} - {""}
    lines += [""] + [f"Note: {n}." for n in sorted(notes)] + ["Per-phase tests have only the cases of that phase and little power.", ""]
    return lines


def _pretraining(results: dict[str, Any], arms: list[str]) -> list[str]:
    lines = ["## Pretraining and cost", ""]
    rows = []
    for run in results["runs"]:
        info = run.get("pretrain") or {}
        seconds = run["seconds"]
        rows.append([run["arm"], run["seed"], info.get("final_loss"), info.get("empty_view_rate"),
                     seconds.get("pretrain"), seconds.get("refine"), seconds.get("evaluate")])
    lines += _table(["arm", "seed", "final pretrain loss", "empty-view rate", "pretrain s", "refine s", "evaluate s"], rows)
    return lines + [""]


def _verdict(by_phase: dict[str, Any], arms: list[str], phases: list[str], values: dict[str, Any], train: dict[str, int]) -> list[str]:
    """What the numbers say about the paper's hypothesis (none < SimCLR < AGCL < DCC, biggest gain on the scarce phase)."""
    lines = ["## What it shows", ""]
    ordered = sorted(arms, key=lambda a: -(by_phase[a]["all"] or 0.0))
    ranked = [f"{a} ({by_phase[a]['all']:.3f})" for a in ordered if by_phase[a]["all"] is not None]
    lines.append(f"* Ranking by mean Dice: {' > '.join(ranked)}.")
    chain = [a for a in ("none", "simclr", "agcl", "dcc") if a in arms]
    if len(chain) > 1:
        holds = all((by_phase[x]["all"] or 0) < (by_phase[y]["all"] or 0) for x, y in zip(chain, chain[1:]))
        lines.append(f"* The paper's ordering {' < '.join(chain)} {'holds' if holds else 'does not hold'} in this run.")
    if BASELINE in arms:
        significant = [a for a in arms if a != BASELINE and paired(values, a, BASELINE)["significant"]]
        lines.append(f"* Significant differences from no pretraining (p < 0.01): {', '.join(significant) if significant else 'none'}.")
        gains = {p: {a: (by_phase[a][p] or 0) - (by_phase[BASELINE][p] or 0) for a in arms if a != BASELINE} for p in phases}
        scarce = min((p for p in phases if p in train), key=lambda p: train[p], default=None)
        for arm in (a for a in ("dcc", "agcl", "simclr") if a in arms):
            if phases:
                best = max(phases, key=lambda p: gains[p][arm])
                lines.append(f"* {arm} minus none per phase: " + ", ".join(f"{p} {gains[p][arm]:+.3f}" for p in phases) + f"; best phase {best}.")
        if scarce is not None and "dcc" in arms:
            others = [gains[p]["dcc"] for p in phases if p != scarce]
            rest = f" vs {np.mean(others):+.3f} on the other phases" if others else ""
            lines.append(f"* Scarce training phase ({scarce}, {train[scarce]} training case(s)): dcc minus none {gains[scarce]['dcc']:+.3f}{rest}.")
    if "dcc" in arms and "dcc-percentile" in arms:
        diff = (by_phase["dcc"]["all"] or 0) - (by_phase["dcc-percentile"]["all"] or 0)
        result = paired(values, "dcc", "dcc-percentile")
        p = _p(result["p_value"])
        lines.append(f"* d scale: fixed HU window minus per-volume percentile = {diff:+.3f} mean Dice (p = {p}).")
    return lines + [""]


def _arm_text(arm: dict[str, Any]) -> str:
    if not arm["loss"]:
        return f"{arm['name']} (no pretraining)"
    return f"{arm['name']} ({arm['loss']}, form {arm['form']}, d scale {arm['d_scale']})"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
