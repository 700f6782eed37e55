"""The audio layer of the conversation loop: devices, full-duplex streams, echo cancellation,
recordings. Everything runs at Moshi's rate: 24 kHz mono float32 in 80 ms frames of 1920 samples.

sounddevice (PortAudio) is imported lazily, inside functions, so that importing this package
never fails on a machine without PortAudio and PortAudio is initialised as late as possible.
"""
