"""The ``ecgllm`` command line (``ecgllm.cli``): the one entry point that wires every stage's jobs together.

``ecgllm <command>`` after installation, ``python -m ecgllm <command>`` without it, and
``accelerate launch -m ecgllm finetune ...`` for multi-GPU training.
"""
