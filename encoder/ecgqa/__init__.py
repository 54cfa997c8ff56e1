"""ECG-QA (Oh et al., NeurIPS 2023) in one home: its schema (question types, attribute types, the sample record)
and its templates, imported by the loader, the question writer, the scorer and the baselines."""
