"""Speed, kept apart from the homework's code: the continuous-batching engine (batching.py) over its KV cache
(kv_cache.py), int8 weights for decode steps (quant.py), torch's threads fitted to the machine's load (threads.py)
and the opt-in calculator (calculator.py). `BaseLLM` runs on it by default; `HOMEWORK_ENGINE=off` runs the
homework's `model.generate` path instead."""
