"""Checkpoint files, without MLX: what the published Moshi checkpoints hold and how to read,
check, find, fetch, write and quantize them.

    config.py              moshi's JSON config as a dataclass; the moshiko v0.1 and tiny presets
    layout.py              every tensor a model file holds, for a config and a quantization
    mimi_layout.py         every tensor of the Mimi codec file
    safetensors_reader.py  a safetensors header, read and checked without touching the data
    safetensors_writer.py  a streaming safetensors writer (header first, tensor by tensor)
    inspection.py          a model file from its header: bits, group size, mismatches
    validate.py            model, codec and text tokenizer checked together before loading
    catalogue.py           the published presets (voices, quantizations, file names, sizes)
    resolve.py, hub.py     a preset, folder or files -> paths; the Hugging Face cache
    writing.py             checkpoint folders written atomically, with a disk check
    quantize.py            bf16 -> q4/q8 exactly as the published files were made
    synthetic/             random-weight checkpoints in exactly the published layout
    stt_config.py, stt_layout.py, stt_validate.py, stt_hub.py
                           Kyutai's speech-to-text model: its config.json, tensors, checks
                           before loading, catalogue entry and download (synthetic/stt.py)

Importing this package never imports MLX (a test checks it); quantizing calls `mx.quantize`,
imported when it runs.
"""
