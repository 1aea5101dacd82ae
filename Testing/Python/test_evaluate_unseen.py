"""tools/evaluate_unseen.py: the card's unseen metrics and the docs' table carry every test set, the pathology set included."""

from builders import load_tool


def _summary(liver: float, spleen: float | None, groups: dict[str, str]) -> dict:
    organs = {"liver": {"dice_mean": liver}, "spleen": {"dice_mean": spleen}}
    mean = liver if spleen is None else (liver + spleen) / 2
    group = {"dice_mean_of_organs": mean, "per_organ": organs}
    return {"summary": {"n_cases": 2, "dice_mean_of_organs": mean, "per_organ": organs, **{key: {value: group} for key, value in groups.items()}}}


def test_every_set_reaches_the_card_and_the_table():
    tool = load_tool("evaluate_unseen")
    documents = {"unseen-synthetic": _summary(0.9, 0.7, {"per_phase": "arterial", "per_subject": "s0006"}),
                 "unseen-pathology": _summary(0.8, 0.3, {"per_phase": "portal-venous", "per_subject": "s0009"}),
                 "unseen-real": _summary(0.95, None, {"per_subject": "s0009"})}
    metrics = tool.card_metrics(documents)
    assert set(metrics) == set(documents)
    assert metrics["unseen-pathology"]["dice_per_organ"] == {"liver": 0.8, "spleen": 0.3} and "per_phase" in metrics["unseen-pathology"]
    assert "per_phase" not in metrics["unseen-real"]
    lines = tool.markdown_table(metrics).splitlines()
    assert lines[0] == "| organ | unseen synthetic | synthetic s0006 | synthetic arterial | synthetic with pathology | real s0009 |"
    assert lines[2] == "| liver | 0.900 | 0.900 | 0.900 | 0.800 | 0.950 |"
    assert lines[3] == "| spleen | 0.700 | 0.700 | 0.700 | 0.300 | - |"
    assert lines[4] == "| **mean** | **0.800** | **0.800** | **0.800** | **0.550** | **0.950** |"
