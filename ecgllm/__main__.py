"""``python -m ecgllm <command> ...`` (also ``accelerate launch -m ecgllm finetune ...``)."""

import sys

from ecgllm.cli import main

if __name__ == "__main__":
    sys.exit(main())
