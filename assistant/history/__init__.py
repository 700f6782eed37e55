"""Past conversations: the folders the loop left, read back, searched, played, transcribed.

store.py        list, open, delete and prune conversations by id (never by a path)
transcripts.py  both sides in time order: transcript.json and transcript.txt
transcriber.py  the user's side transcribed after the conversation, in the background
audio.py        a conversation's two recordings as one stereo WAV (player, export, by ranges)
latency.py      its delay over time, from metrics.jsonl (the web page's chart)
export.py       one shareable file: Markdown transcript plus audio
"""
