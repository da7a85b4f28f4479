"""The project's own knowledge of units: the table (table.py), numbers as people write them (numbers.py), the
question reader (reader.py), our seeded data sets (generator.py), the CoT prompt's worked examples (fewshot.py), and
the reasoning RFT learns with its verifier (rationale.py)."""
