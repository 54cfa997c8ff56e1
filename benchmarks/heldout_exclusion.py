"""How many ECGs / patients stage 1 must leave out so that ECG-QA's held-out ECGs stay unseen.

    python benchmarks/heldout_exclusion.py --ptbxl-table ../shared/data/ptbxl/ptbxl_database.csv \\
        --test-ids ../shared/data/ecgqa/ptbxl/test_ecgs.tsv [--ecgqa-root ROOT]

Prints the exclusion summary and how many of the excluded ECGs sit in PTB-XL's stage-1 folds (1-8 train,
9 val) as JSON.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from encoder.exclusion import HeldoutExclusion, ecgqa_heldout_ids, read_id_file


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptbxl-table", required=True, help="ptbxl_database.csv (needs ecg_id, patient_id)")
    ap.add_argument("--test-ids", help="id file (test_ecgs.tsv, a JSON list or one id per line)")
    ap.add_argument("--ecgqa-root", help="ECG-QA root: its valid and test questions' ECGs are held out")
    args = ap.parse_args(argv)
    table = pd.read_csv(args.ptbxl_table, usecols=["ecg_id", "patient_id", "scp_codes", "strat_fold"])
    heldout: set[int] = set()
    if args.test_ids:
        heldout |= read_id_file(args.test_ids)
    if args.ecgqa_root:
        heldout |= ecgqa_heldout_ids(args.ecgqa_root)
    ex = HeldoutExclusion.from_table(table, heldout)
    fold = dict(zip(table["ecg_id"].astype(int), table["strat_fold"].astype(int), strict=True))
    held_in_table = [i for i in ex.heldout_ecg_ids if i in fold]
    out = {
        **ex.summary(),
        "n_table_ecgs": len(table),
        "n_table_patients": int(table["patient_id"].nunique()),
        "n_heldout_in_stage1_train_folds": sum(1 <= fold[i] <= 8 for i in held_in_table),
        "n_excluded_from_stage1_train": sum(1 <= fold[i] <= 8 for i in ex.excluded_ecg_ids),
        "n_excluded_from_stage1_val": sum(fold[i] == 9 for i in ex.excluded_ecg_ids),
        "n_excluded_extra_same_patient": len(ex.excluded_ecg_ids) - len(held_in_table),
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
