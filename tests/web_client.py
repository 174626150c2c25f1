"""A browser-like HTTP client for a real server (requests with a cookie jar), optionally
coming "from" an address through the trusted proxy (X-Forwarded-For), for the attack tests."""

from __future__ import annotations

import re
from typing import Any

import requests

from tests.support import SLOW


class WebClient:
    """Cookies, CSRF tokens and an optional forwarded address, against `base`."""

    def __init__(self, base: str, address: str | None = None) -> None:
        self.base = base
        self.s = requests.Session()
        if address:
            self.s.headers["X-Forwarded-For"] = address
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        return self.s.get(self.base + path, timeout=30 * SLOW, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        if isinstance(data, dict) and "csrf" not in data:
            data = {**data, "csrf": self.csrf or self.login_csrf()}
        return self.s.post(self.base + path, data=data, timeout=30 * SLOW, **kw)

    def login_csrf(self) -> str:
        """The pre-login double-submit token (sets its cookie)."""
        page = self.get("/agent").text
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def login(self, username: str, password: str) -> requests.Response:
        r = self.post(
            "/agent/login",
            {"username": username, "password": password, "csrf": self.login_csrf()},
        )
        if r.status_code == 303:
            page = self.get("/agent").text
            self.csrf = re.search(r'"csrf":\s*"([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return r

    def family_form(self) -> tuple[str, list[str]]:
        """(CSRF token, free slot values) of the family booking form."""
        page = self.get("/family?lang=en").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return csrf, re.findall(r'<option value="(\d+)"', page)  # the time choice

    def book(self, idem: str, **fields: str) -> requests.Response:
        """Submit the family booking form (name/phone or card_code in `fields`)."""
        csrf, slots = self.family_form()
        data = {
            "csrf": csrf,
            "idem": idem,
            "dialect": "cmn",
            "topic": "other",
            "slot": slots[1],
            "contact": "family@example.com",
            **fields,
        }
        return self.post("/family/book?lang=en", data)
