"""Live, dialect-aware captions: dialect registry, model installation and the vosk engine.

Public entry points: `registry.load_registry`, `models.install_model`,
`transcriber.CaptionEngine` (one per server process) and `detect.detect_dialect`.
"""
