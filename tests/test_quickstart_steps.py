"""Quickstart step reuse: a step is redone when its settings or any step it builds on changed."""

from llm_finetune.quickstart import MARKER, QuickstartConfig, _run_step


def test_a_redone_upstream_step_redoes_the_steps_built_on_it(tmp_path):
    cfg = QuickstartConfig(out_dir=str(tmp_path))
    calls: list[str] = []

    def step(name: str, settings, upstream: str = "") -> str:
        def fn() -> None:
            (tmp_path / name).mkdir(exist_ok=True)
            calls.append(name)

        return _run_step(name, tmp_path / name, settings, fn, cfg, {}, upstream=upstream)

    cohort = step("cohort", ["gen-1"])
    step("stage1", {"epochs": 40}, upstream=cohort)
    assert calls == ["cohort", "stage1"]
    cohort = step("cohort", ["gen-1"])  # same settings: both reused
    step("stage1", {"epochs": 40}, upstream=cohort)
    assert calls == ["cohort", "stage1"]
    cohort = step("cohort", ["gen-2"])  # a new generator version: the cohort and stage 1 are redone
    step("stage1", {"epochs": 40}, upstream=cohort)
    assert calls == ["cohort", "stage1", "cohort", "stage1"]
    step("stage1", {"epochs": 60}, upstream=cohort)  # own settings changed
    assert calls[-1] == "stage1" and len(calls) == 5


def test_forcing_a_step_clears_what_an_interrupted_run_left(tmp_path):
    seen: list[bool] = []

    def fn() -> None:
        step_dir = tmp_path / "stage2"
        seen.append((step_dir / "checkpoints").exists())
        step_dir.mkdir(exist_ok=True)

    (tmp_path / "stage2" / "checkpoints").mkdir(parents=True)  # killed mid-way: no marker, a checkpoint
    cfg = QuickstartConfig(out_dir=str(tmp_path), force=["stage2"])
    _run_step("stage2", tmp_path / "stage2", {"steps": 150}, fn, cfg, {})
    assert seen == [False]
    cfg = QuickstartConfig(out_dir=str(tmp_path))
    (tmp_path / "stage2" / "checkpoints").mkdir()
    (tmp_path / "stage2" / MARKER).unlink()
    _run_step("stage2", tmp_path / "stage2", {"steps": 150}, fn, cfg, {})
    assert seen == [False, True]  # not forced, no marker: left for finetune's resume


def test_the_report_example_is_drawn_without_looking_at_labels():
    from llm_finetune.quickstart_report import example_record

    rows = list(range(100, 160))
    picks = {example_record(rows, seed) for seed in range(20)}
    assert example_record(rows, 3) == example_record(rows, 3)  # seeded
    assert picks <= set(rows) and len(picks) > 5  # a draw over the fold, not a fixed or label-chosen record
    assert example_record(rows, 0) == example_record(list(rows), 0)  # depends on the rows and seed only


def test_the_report_shows_the_multitask_heads_of_stage_1(tmp_path):
    import json

    from llm_finetune.quickstart_report import write_report

    (tmp_path / "stage1").mkdir()
    metrics = {
        "heart_axis": {"accuracy": 0.9585, "n": 652},
        "noise": {"macro_auroc": 0.95, "record_auroc": {"baseline drift": 0.923, "burst noise": 0.5}},
        "numeric_feature": {"mae_ms_per_feature": {"pr interval": 23.98}},
    }
    (tmp_path / "stage1" / "aux_metrics.json").write_text(json.dumps(metrics))
    text = write_report(tmp_path, {"stage1": 1.0}).read_text()
    assert "| heart_axis | accuracy: 0.959; n: 652 |" in text
    assert "record_auroc: baseline drift 0.923, burst noise 0.500" in text
    assert "pr interval 23.980" in text
    assert "signal path" not in text  # no signal-path runs in this folder
