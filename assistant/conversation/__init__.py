"""The conversation loop: microphone -> Mimi -> Moshi -> Mimi -> speaker, in real time."""
