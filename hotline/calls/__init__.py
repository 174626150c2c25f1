"""The media gateway: audio-only aiortc legs that tap each party's microphone."""
