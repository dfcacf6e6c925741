"""`make reproduce`: the paper's Table 1 and Figs. 2-3 at CPU scale on the built-in corpus.

`systems` (the six Table 1 systems as overrides of configs/demo.py), `run` (train + evaluate, resumable),
`alignment` (monotonicity score of attention weights), `figures` (Figs. 2 and 3), `report` (docs/results.md).
"""
