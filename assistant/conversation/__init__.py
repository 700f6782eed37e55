"""The conversation: microphone -> Mimi -> Moshi -> Mimi -> speaker, in real time.

loop.py        ConversationLoop: the three worker threads, bounded lag, per-frame records
chat.py        Chat: everything set up around the loop (model, codec, audio, session)
lag.py         LagPolicy: where a frame is dropped to keep the delay bounded
session.py     the session folder, written as the conversation goes
transcript.py  Moshi's words: the utterance rule and the recent transcript
"""
