"""Typed errors of screen guidance; each changes nothing and maps to one websocket code."""

from __future__ import annotations

from hotline.errors import BadMessage, Conflict, NotFound


class NoSuchScript(NotFound):
    code = "no_such_script"


class NoSuchStep(NotFound):
    code = "no_such_step"


class StaleStep(Conflict):
    """The caller answered a step view that has since been replaced."""

    code = "stale_step"


class NotCurrent(Conflict):
    """The answer names a step (or view) that is not the one on the caller's screen."""

    code = "not_current"


class NoGuidance(Conflict):
    """No script has been started in this call."""

    code = "no_guidance"


class NoPrevious(Conflict):
    code = "no_previous"


class BadText(BadMessage):
    """Free text that is empty, too long for one screen, or not plain text."""

    code = "bad_text"


class BadAnswer(BadMessage):
    code = "bad_answer"
