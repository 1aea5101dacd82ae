"""What fine-tuning changed, from the new model's card (``metrics.finetune``, ``held_back``), as text for the panel."""

from __future__ import annotations

from typing import Any

from DCCSegmentLib.engine import CallResult, Engine, EngineCall, EngineError

SHOW_TIMEOUT_S = 120.0
VERDICTS = {"better": "better on your cases", "worse": "worse on your cases", "unchanged": "no clear change on your cases"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _score(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.3f}"


def _change(block: dict[str, Any]) -> str:
    """``0.810 -> 0.880 (+0.070)`` from a block with before, after and delta (delta computed when missing)."""
    before, after, delta = _number(block.get("before")), _number(block.get("after")), _number(block.get("delta"))
    if delta is None and before is not None and after is not None:
        delta = after - before
    return f"{_score(before)} -> {_score(after)}" + ("" if delta is None else f" ({delta:+.3f})")


def finetune_summary(card: dict[str, Any]) -> str:
    """Lines for the panel: the model fine-tuned from, mean Dice before -> after on the user's held-out cases and
    on the benchmark, the verdict, and why the model is held back (if it is). Empty for a model trained from scratch."""
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    finetune = metrics.get("finetune")
    if not isinstance(finetune, dict):
        return ""
    held_out = finetune.get("held_out") if isinstance(finetune.get("held_out"), dict) else {}
    cases = held_out.get("cases") if isinstance(held_out.get("cases"), list) else []
    how = " (cross-validation)" if held_out.get("method") == "cross-validation" else ""
    if "body_scale" in held_out:
        how += f" read as children (body scale {held_out['body_scale']}; tick Child in DCC Segment)"
    first = f"from {finetune.get('from') or 'an unnamed model'}: on your {len(cases)} held-out case{'' if len(cases) == 1 else 's'}{how} {_change(held_out)}"
    p_value = _number(held_out.get("p_value"))
    if p_value is not None:
        first += f", p = {p_value:.2f}"
    benchmark = finetune.get("benchmark")
    if isinstance(benchmark, dict):
        first += f"; on the benchmark {_change(benchmark)}"
    lines = [first]
    verdict = finetune.get("verdict")
    if isinstance(verdict, str) and verdict:
        lines.append(f"verdict: {VERDICTS.get(verdict, verdict)}")
    held_back = card.get("held_back")
    if isinstance(held_back, str) and held_back:
        lines.append(f"held back: {held_back} (never the default; choose it in DCC Segment to use it anyway)")
    return "\n".join(lines)


def model_card_call(engine: Engine, ref: str) -> EngineCall:
    """The background ``models show REF --json``; ``model_card(result)`` reads the card."""
    return EngineCall(engine, engine.command("models", "show", ref, "--json"), timeout=SHOW_TIMEOUT_S)


def model_card(result: CallResult) -> dict[str, Any]:
    """The card of a ``models show --json`` answer; EngineError when there is none."""
    entry = result.json()
    card = entry.get("card") if isinstance(entry, dict) else None
    if not isinstance(card, dict):
        raise EngineError("the engine's model entry holds no card", 0)
    return card
