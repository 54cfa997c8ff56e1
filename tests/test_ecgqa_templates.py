"""The template table against ECG-QA's real samples and options (copies in tests/data/ecgqa, CC BY 4.0, see LICENSE)."""

import ast
import csv
import json
from pathlib import Path

from encoder.ecgqa.templates import ATTRIBUTE_TYPES, QUESTION_TYPES, TEMPLATES, template_ids

DATA = Path(__file__).parent / "data" / "ecgqa" / "ptbxl"


def _real_samples() -> list[dict]:
    return json.loads((DATA / "template" / "test" / "80000.json").read_text()) + json.loads(
        (DATA / "real183" / "questions_sample.json").read_text()
    )


def test_template_types_match_real_samples():
    samples = _real_samples()
    assert {s["template_id"] for s in samples} >= {26, 27, 28, 69, 70}
    for s in samples:
        t = TEMPLATES[s["template_id"]]
        assert (t.question_type, t.attribute_type) == (s["question_type"], s["attribute_type"])


def test_known_wordings_are_verbatim():
    for s in _real_samples():
        t = TEMPLATES[s["template_id"]]
        if "{" not in t.wording:
            assert t.wording == s["question"]
    assert (
        TEMPLATES[26].wording.format(attr="static noise", lead="aVF")
        == "Does this ECG show static noise in lead aVF?"
    )


def test_options_match_answers_csv():
    with (DATA / "answers_for_each_template.csv").open() as f:
        csv_options = {
            int(r["template_id"]): tuple(ast.literal_eval(r["classes"])) for r in csv.DictReader(f)
        }
    assert sorted(csv_options) == list(range(1, 71)) == sorted(TEMPLATES)
    for tid, t in TEMPLATES.items():
        assert t.options == csv_options[tid]
        if t.question_type.endswith("verify"):
            assert set(t.options) <= {"yes", "no", "not sure"}


def test_counts_and_subset():
    by_attr = {a: sum(t.attribute_type == a for t in TEMPLATES.values()) for a in ATTRIBUTE_TYPES}
    assert by_attr == {"scp_code": 33, "noise": 9, "numeric_feature": 18, "extra_systole": 4, "heart_axis": 3,
                       "stage_of_infarction": 3}  # fmt: skip
    assert {t.question_type for t in TEMPLATES.values()} == set(QUESTION_TYPES)
    assert len(template_ids("mimic-iv-ecg")) == 60 and 26 in template_ids("mimic-iv-ecg")
    assert 28 not in template_ids("mimic-iv-ecg")
    assert {17, 18, 19, 26, 28, 31, 33, 34} <= {t for t, tpl in TEMPLATES.items() if tpl.lead_specific}
