"""``python -m demo [--model_dir DIR --port N ...]`` starts the chat demo (same options as ``ecgllm demo``)."""

import sys

from ecgllm.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
