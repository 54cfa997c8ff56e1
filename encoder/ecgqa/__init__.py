"""ECG-QA (Oh et al., NeurIPS 2023) in one home, imported by the loader, the question writer, the scorer and the
baselines: ``attributes`` (a record's attributes beyond SCP codes, answer strings, normal ranges),
``templates`` (the 70 templates: ids, question and attribute types, wordings, options, MIMIC-IV-ECG subset) and
``rules`` (what the comparison and "any ..." templates ask, shared by the question writer and the answerer)."""
