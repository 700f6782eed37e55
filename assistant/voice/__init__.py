"""The MLX runtime: what makes Moshi speak (not the `--voice` option, which picks moshiko or
moshika; see `checkpoint.catalogue`).

    lm_config.py   a checkpoint's config as moshi_mlx's LmConfig
    model.py       the model built at the checkpoint's quantization
    memory.py      will it fit? MLX's cache limit and memory counters
    loader.py      validate, check memory, load strictly, evaluate
    engine.py      the streaming engine: one step per 80 ms frame, no length limit
    step_graph.py  its compiled step, over a ring of exactly `context` KV slots
    sampling.py    greedy and top-k sampling with per-engine keys

The Mimi codec, which needs no MLX, is a package of its own: `assistant.codec`.
"""
