"""Front door for everyone: the Gradio chat demo (``ecgllm demo`` / ``python -m demo``) and the CLI."""
