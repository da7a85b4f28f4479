"""python -m homework.recipes: every stage from the base model, and its report (recipe.py)."""
from ..cli import cli
from .recipe import main

cli(main)
