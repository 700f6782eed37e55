"""The Mimi codec (rustymimi) for the live loop: no MLX, below the conversation.

streaming.py   StreamingCodec: encode and decode one 80 ms frame, each side in a worker
               process retired on a schedule for a successor warmed beside it (roll-over)
process.py     one codec worker process, from the parent's side
forks.py       the fork server: Mimi built once, workers forked ready from it
child.py       the worker's own side (and the fork server's)
wire.py        the messages between them
"""
