"""The recipes beyond the homework's parts: every stage from the base model in one command (recipe.py), GRPO
(grpo.py) and the throughput bench (bench.py)."""
