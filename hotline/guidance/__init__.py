"""Screen guidance: scripts that walk a caller through an app one big step at a time.

Scripts are TOML data (`scripts/*.toml`), validated by `loader`, and played during a call by
the pure state machine in `session`.
"""

from hotline.guidance.loader import ScriptError, check, load_library
from hotline.guidance.model import Highlight, Library, Script, Step
from hotline.guidance.report import report
from hotline.guidance.session import GuidanceSession

__all__ = [
    "GuidanceSession",
    "Highlight",
    "Library",
    "Script",
    "ScriptError",
    "Step",
    "check",
    "load_library",
    "report",
]
