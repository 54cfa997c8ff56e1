"""Bad-input corpus (issue 8): see corpus.py."""
