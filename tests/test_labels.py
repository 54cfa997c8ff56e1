"""SCP statements, the six PTB-XL label tasks and label text."""

import pytest

from encoder.errors import ConfigError, DatasetError
from encoder.labels import LABEL_TASKS, ScpStatements, label_text, labels_for_record


@pytest.fixture(scope="module")
def st() -> ScpStatements:
    return ScpStatements.load()


@pytest.mark.parametrize(
    ("task", "size"),
    [
        ("all", 71),
        ("diagnostic", 44),
        ("subdiagnostic", 23),
        ("superdiagnostic", 5),
        ("form", 19),
        ("rhythm", 12),
        ("all+superdiagnostic", 75),  # 71 codes + MI, STTC, CD, HYP (NORM is a code already)
    ],
)
def test_task_vocabulary_sizes_match_the_benchmark(st, task, size):
    names = st.task_labels(task)
    assert len(names) == size
    assert names == sorted(names)


def test_superclasses(st):
    assert st.task_labels("superdiagnostic") == ["CD", "HYP", "MI", "NORM", "STTC"]


def test_aggregation_as_in_strodthoff(st):
    codes = {"IMI": 100.0, "ILMI": 50.0, "NDT": 100.0, "ABQRS": 0.0, "SR": 0.0, "NOT_A_CODE": 100.0}
    assert labels_for_record(codes, "all", st) == ["ABQRS", "ILMI", "IMI", "NDT", "SR"]
    assert labels_for_record(codes, "diagnostic", st) == ["ILMI", "IMI", "NDT"]
    assert labels_for_record(codes, "subdiagnostic", st) == ["IMI", "STTC"]  # ILMI -> IMI subclass
    assert labels_for_record(codes, "superdiagnostic", st) == ["MI", "STTC"]
    assert labels_for_record(codes, "form", st) == ["ABQRS", "NDT"]  # NDT is diagnostic and form
    assert labels_for_record(codes, "rhythm", st) == ["SR"]
    assert labels_for_record(codes, "all+superdiagnostic", st) == [
        "ABQRS",
        "ILMI",
        "IMI",
        "MI",
        "NDT",
        "SR",
        "STTC",
    ]
    assert labels_for_record({"NORM": 100.0, "SR": 0.0}, "all+superdiagnostic", st) == ["NORM", "SR"]


def test_likelihood_zero_codes_are_kept_by_default(st):
    # PTB-XL gives rhythm codes likelihood 0; they must not vanish.
    assert labels_for_record({"NORM": 100.0, "SR": 0.0}, "rhythm", st) == ["SR"]
    assert labels_for_record({"IMI": 15.0, "SR": 0.0}, "superdiagnostic", st, min_likelihood=50) == []
    assert labels_for_record({"IMI": 15.0, "SR": 0.0}, "all", st, min_likelihood=50) == ["SR"]


def test_every_task_label_has_a_description(st):
    for task in LABEL_TASKS:
        for name in st.task_labels(task):
            assert st.description(name)
    with pytest.raises(DatasetError):
        st.description("XYZ")


def test_knowledge_text_is_expanded_and_deterministic(st):
    text = label_text(["IMI", "SR"], st, "knowledge")
    assert text == "Sinus rhythm. Inferior myocardial infarction (diagnostic class: myocardial infarction)."
    assert label_text(["SR", "IMI", "SR"], st) == text  # order and duplicates do not matter
    assert label_text(["NORM"], st) == "Normal ECG."  # no redundant "(diagnostic class: normal ECG)"
    assert label_text(["MI", "CD"], st) == "Conduction disturbance. Myocardial infarction."
    assert label_text(["_AVB"], st) == "AV block (diagnostic class: conduction disturbance)."
    assert label_text([], st) == ""


def test_codes_text(st):
    assert label_text(["IMI", "SR", "ABQRS"], st, "codes") == "SR, IMI, ABQRS"


def test_bad_names_raise_typed_errors(st, tmp_path):
    with pytest.raises(ConfigError, match="label task"):
        labels_for_record({}, "superclass", st)
    with pytest.raises(ConfigError, match="text style"):
        label_text(["SR"], st, "prose")
    with pytest.raises(DatasetError, match="not found"):
        ScpStatements.load(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("code,description\nSR,sinus rhythm\n")
    with pytest.raises(DatasetError, match="missing column"):
        ScpStatements.load(tmp_path / "bad.csv")


def test_ecgqa_name_spells_labels_as_the_questions_do():
    from encoder.labels import ecgqa_name

    assert ecgqa_name("IMI") == "myocardial infarction in inferior leads"
    assert ecgqa_name("LOWT") == "low amplitude t-wave"
    assert ecgqa_name("AFIB") == "atrial fibrillation"
    assert ecgqa_name("STTC") == "st/t change"
    assert ecgqa_name("not-a-code") == "not-a-code"
