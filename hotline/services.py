"""The long-lived objects one hotline process shares, built once from the config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.asr.registry import Registry, load_registry
from hotline.config import Config
from hotline.db import Database
from hotline.guidance.loader import Library, load_library
from hotline.live.hub import Hub
from hotline.prompts import Prompts
from hotline.tokens import Signer
from hotline.tts import Speech

log = logging.getLogger(__name__)


@dataclass
class Services:
    cfg: Config
    db: Database
    hub: Hub
    signer: Signer
    registry: Registry
    speech: Speech
    prompts: Prompts
    guidance: Library
    ws_port: int = 0  # the websocket port actually bound (config may say 0)

    def live_snapshot(self) -> dict:
        """What is in flight right now (asked of the live side; callable from Flask threads)."""
        return self.hub.ask_threadsafe(self._snapshot) if self._snapshot else {}

    _snapshot: Any = None  # set by hotline.server.start: Switchboard.snapshot plus extras
    _kick: Any = None  # set by hotline.server.start: Switchboard.kick
    _close_sockets: Any = None  # set by hotline.server.start: LiveServer.close_account

    _family_join: Any = None  # set by hotline.server.start: LiveFamily.link_for_elder

    def family_join_link(self, elder_id: int) -> str | None:
        """A join link for the elder's call in progress, or None (from any thread)."""
        if self._family_join is None:
            return None
        result = self.hub.ask_threadsafe(self._family_join, elder_id)
        return result if isinstance(result, str) else None

    def kick_agent(self, agent_id: int) -> None:
        """Disconnect an agent's live console (from any thread)."""
        if self._kick is not None:
            self.hub.call_threadsafe(self._kick, agent_id)

    def close_sockets(
        self, agent_id: int, code: str, session: str | None = None, keep: str | None = None
    ) -> None:
        """Close every socket of an account, or of one of its sessions, or all but the
        session `keep` (stored session hashes), from any thread."""
        if self._close_sockets is not None:
            self.hub.call_threadsafe(self._close_sockets, agent_id, code, session, keep)

    def sign_out_everywhere(self, agent_id: int, code: str, keep: str | None = None) -> None:
        """End every session and socket of an account (disabled, role or password changed),
        but the session `keep` (its stored hash) and its sockets, if given."""
        from hotline.db import sessions as sessions_db

        sessions_db.delete_for_agent(self.db, agent_id, keep)
        if keep is None:
            self.kick_agent(agent_id)
        self.close_sockets(agent_id, code, keep=keep)

    def dialect_names(self, lang: str) -> dict[str, str]:
        return {d.id: d.name(lang) for d in self.registry.dialects.values()}


def build(cfg: Config, *, hub: Hub | None = None, migrate: bool = True) -> Services:
    """Open the database (migrated), load the registry, and make the shared helpers."""
    db = Database(cfg.db_path or Path(cfg.data_dir) / "hotline.sqlite3")
    if migrate:
        db.migrate()
        from hotline.db import elders as elders_db

        if lengthened := elders_db.lengthen_card_codes(db):
            log.warning("%d short card codes were redrawn: print those cards again", lengthened)
    registry = load_registry(cfg.registry_path)
    signer = Signer(cfg.secret_key)
    voices = {d.id: d.voice for d in registry.dialects.values()}
    library, errors = load_library(cfg.scripts_dir)
    for error in errors:
        log.error("guidance script refused: %s", error)
    return Services(
        cfg=cfg,
        db=db,
        hub=hub or Hub(),
        signer=signer,
        registry=registry,
        speech=Speech(Path(cfg.data_dir) / "tts", max_bytes=cfg.tts_cache_mb * 1024 * 1024),
        prompts=Prompts(
            signer,
            voices,
            wording={d.id: d.wording for d in registry.dialects.values() if d.wording},
            ui_langs={d.id: d.ui_lang for d in registry.dialects.values()},
        ),
        guidance=library,
    )
