"""`assistant bench`: checkpoint variants (q4, q8, bf16, ...) compared on identical input.

One module per job: `variants` (resolve, check, pick the reference), `speech` (the user's
codes, encoded once), `system` (machine facts, page cache, RSS), `measure` (one variant),
`fidelity` (agreement and KL against the reference), `results` and `timing` (data),
`report`, `tables`, `plots`, and `runner`, which ties them together and keeps partial
results when something fails.
"""
