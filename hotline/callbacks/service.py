"""The callbacks domain behind one object: family bookings, the live line's hooks, agents' work.

Every state change is one SQLite transaction with a conditional update, so two agents, two
browser tabs or two processes can never both win the same booking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hotline.callbacks import scheduler, slots
from hotline.callbacks.booking import BookingError, BookingRequest
from hotline.callbacks.notify import Attachment, LoggingSmsGateway, Mailer, SmsGateway
from hotline.config import Config
from hotline.db import Database
from hotline.db import callbacks as store
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db.callbacks import Booking
from hotline.errors import Conflict, Forbidden, NotFound
from hotline.i18n import t
from hotline.privacy import mask_phone, mask_text
from hotline.tokens import Signer

log = logging.getLogger(__name__)

Clock = Callable[[], float]
MANAGE_PURPOSE = "callback-manage"
MANAGE_DAYS_AFTER = 30


@dataclass(frozen=True)
class Booked:
    """The outcome of a family booking: the booking, and whether this request created it."""

    booking: Booking
    created: bool


class CallbackService:
    """Bookings, their scheduling and the agents' follow-up, over one database."""

    def __init__(
        self,
        db: Database,
        cfg: Config,
        clock: Clock = time.time,
        *,
        signer: Signer | None = None,
        mailer: Mailer | None = None,
        sms: SmsGateway | None = None,
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self.tz = ZoneInfo(cfg.timezone)
        self.signer = signer or Signer(cfg.secret_key)
        self.mailer = mailer or Mailer(cfg)
        self.sms: SmsGateway = sms or LoggingSmsGateway()
        self.policy = scheduler.RetryPolicy(
            max_attempts=cfg.callback_max_attempts,
            retry_seconds=cfg.callback_retry_minutes * 60,
        )

    # --- capacity -------------------------------------------------------------------------

    def shifts(self) -> list[slots.Shift]:
        return [
            slots.Shift(s.agent_id, s.weekday, s.start_hour, s.end_hour, s.dialects)
            for s in store.shifts(self.db)
        ]

    def available(self, dialect: str, now: float | None = None) -> list[slots.Slot]:
        """Hours in the next 14 days with room for one more `dialect` callback."""
        now = self.clock() if now is None else now
        booked = store.booked_slots(self.db, now - slots.HOUR, now + 15 * slots.DAY)
        return slots.available(
            now, self.tz, self.shifts(), booked, dialect, self.cfg.callback_per_agent_hour
        )

    def _first_free(self, windows: Sequence[float], dialect: str, skip: int | None = None) -> float:
        shifts = self.shifts()
        for start in windows:
            booked = store.booked_slots(self.db, start, start + 1)
            if skip is not None:  # the booking being moved does not compete with itself
                mine = store.get(self.db, skip)
                if mine and mine.slot_start == start:
                    return start
            n = self.cfg.callback_per_agent_hour
            if slots.free_at(start, self.tz, shifts, booked, dialect, n) > 0:
                return start
        raise BookingError("family.err_slot_full", "slot", status=409)

    # --- family bookings ------------------------------------------------------------------

    def book(self, req: BookingRequest, address: str) -> Booked:
        """Commit a family booking (or return the one this idempotency key already made)."""
        now = self.clock()
        if req.card_code and store.by_idem(self.db, req.idem_key) is None:
            self._check_card(req.card_code, address, now)
        with self.db.transaction():
            existing = store.by_idem(self.db, req.idem_key)
            if existing is not None:
                return Booked(existing, False)
            limit = self.cfg.callback_bookings_per_address_hour
            if store.recent_by_address(self.db, address, now - 3600) >= limit:
                raise BookingError("family.err_rate_address", status=429, n=limit)
            elder = None
            if req.card_code:
                elder = elders_db.by_card_code(self.db, req.card_code)
                if elder is None:
                    raise BookingError("family.err_card_unknown", "card_code", status=404)
            phone = req.phone or (elder.phone if elder else "")
            if not phone:
                raise BookingError("family.err_phone", "phone")
            # Per address, then for everyone: a stranger typing the elder's number a few
            # times must not use up the family's bookings.
            per_address = self.cfg.callback_open_per_phone
            total = self.cfg.callback_open_per_phone_total
            if store.open_by_phone_from(self.db, phone, address) >= per_address:
                raise BookingError("family.err_rate_phone", "phone", status=429, n=per_address)
            if store.open_by_phone(self.db, phone) >= total:
                raise BookingError("family.err_rate_phone", "phone", status=429, n=total)
            slot = self._first_free(req.windows, req.dialect)
            new_link = None
            if elder is None:
                lang = "en" if req.dialect == "en" else "zh_CN"
                elder = elders_db.add(
                    self.db, req.name, phone=phone, dialect=req.dialect, lang=lang
                )
                # Only a new elder gets a link from a booking; a card booking never issues
                # one (the card may have been revoked: new cards come from staff).
                new_link = elders_db.new_link(self.db, elder.id).token
            booking_id = store.insert(
                self.db,
                {
                    "code": store.new_code(self.db),
                    "kind": "family",
                    "status": "booked",
                    "elder_id": elder.id,
                    "phone": phone,
                    "dialect": req.dialect,
                    "topic": req.topic,
                    "note": req.note,
                    "slot_start": slot,
                    "alternates": [w for w in req.windows if w != slot],
                    "due_at": slot,
                    "family_contact": req.contact,
                    "lang": req.lang,
                    "idem_key": req.idem_key,
                    "new_link_token": new_link,
                    "address": address,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        booking = self.get(booking_id)
        log.info("callback %s booked for %s", booking.code, mask_phone(phone))
        self._confirm(booking)
        return Booked(booking, True)

    def _check_card(self, code: str, address: str, now: float) -> None:
        """Refuse card guessing: failures are counted per address and for everyone; past
        either limit, card booking pauses (booking by name and phone still works)."""
        mine, every = elders_db.card_failures(self.db, address, now - 3600)
        if mine >= self.cfg.card_failures_per_address_hour or every >= self.cfg.card_failures_hour:
            raise BookingError("family.err_card_locked", "card_code", status=429)
        if elders_db.by_card_code(self.db, code) is None:
            elders_db.record_card_failure(self.db, address, now)
            log.warning("wrong card code from %s", address)
            raise BookingError("family.err_card_unknown", "card_code", status=404)

    def get(self, booking_id: int) -> Booking:
        booking = store.get(self.db, booking_id)
        if booking is None:
            raise NotFound("no such callback", code="callback_unknown")
        return booking

    def manage_token(self, booking: Booking) -> str:
        """The private manage link's token: signed, revocable (nonce), expiring."""
        exp = (booking.slot_start or booking.due_at) + MANAGE_DAYS_AFTER * slots.DAY
        return self.signer.dumps(
            MANAGE_PURPOSE, {"b": booking.id, "n": booking.manage_nonce, "e": exp}
        )

    def manage_url(self, booking: Booking) -> str:
        return f"{self.cfg.public_base_url.rstrip('/')}/family/b/{self.manage_token(booking)}"

    def open_manage(self, token: str) -> Booking:
        """The booking a manage token opens; BookingError if forged, revoked or expired."""
        from hotline.errors import HotlineError

        try:
            payload = self.signer.loads(MANAGE_PURPOSE, token)
            booking_id, nonce, exp = int(payload["b"]), str(payload["n"]), float(payload["e"])
        except (HotlineError, KeyError, TypeError, ValueError):
            raise BookingError("family.err_link_bad", status=404) from None
        booking = store.get(self.db, booking_id)
        if booking is None:
            raise BookingError("family.err_link_bad", status=404)
        if booking.manage_nonce != nonce:
            raise BookingError("family.err_link_revoked", status=410)
        if self.clock() > exp:
            raise BookingError("family.err_link_expired", status=410)
        return booking

    def reschedule(self, booking: Booking, windows: Sequence[float]) -> Booking:
        """Move a not-yet-started family booking to the first chosen hour with room."""
        with self.db.transaction():
            current = self.get(booking.id)
            if current.status != "booked" or current.attempts:
                raise BookingError("family.err_cannot_change", status=409)
            slot = self._first_free(windows, current.dialect, skip=current.id)
            now = self.clock()
            store.update(
                self.db,
                current.id,
                ("booked",),
                slot_start=slot,
                due_at=slot,
                updated_at=now,
                alternates=[w for w in windows if w != slot],
            )
        return self.get(booking.id)

    def cancel(self, booking: Booking) -> Booking:
        """Cancel a booking nobody is calling yet."""
        with self.db.transaction():
            current = self.get(booking.id)
            if current.status == "claimed":
                raise BookingError("family.err_in_progress", status=409)
            if not store.update(
                self.db,
                current.id,
                ("booked", "queued", "held"),
                status="cancelled",
                updated_at=self.clock(),
            ):
                raise BookingError("family.err_closed", status=409)
        return self.get(booking.id)

    def revoke_manage(self, booking: Booking) -> None:
        """Turn the manage link off (a new nonce); the booking itself stays."""
        import secrets

        store.update(
            self.db,
            booking.id,
            (*store.ACTIVE, "done", "failed", "cancelled"),
            manage_nonce=secrets.token_urlsafe(9),
            updated_at=self.clock(),
        )

    def family_view(self, booking: Booking) -> dict[str, Any]:
        """What the family may see: status and, only if shared, the agent's summary."""
        shared = store.shared_wrapup_for(self.db, booking.id)
        return {
            "status": booking.status,
            "attempts": booking.attempts,
            "summary": mask_text(shared["action"]) if shared else "",
            "problem": mask_text(shared["problem"]) if shared else "",
            "next_step": mask_text(shared["next_step"]) if shared else "",
        }

    def local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, self.tz)

    # --- the live line's hooks ------------------------------------------------------------

    def request_from_waiting_caller(
        self, call_id: str, elder_id: int | None, *, eta_seconds: float = 0.0
    ) -> int:
        """A waiting caller asked to be called back: record a 'keep_place' booking (idempotent)."""
        now = self.clock()
        key = f"keep_place:{call_id}"
        with self.db.transaction():
            existing = store.by_idem(self.db, key)
            if existing is not None:
                return existing.id
            elder, dialect = self._caller(call_id, elder_id)
            return store.insert(
                self.db,
                {
                    "code": store.new_code(self.db),
                    "kind": "keep_place",
                    "status": "held",
                    "elder_id": elder.id if elder else None,
                    "phone": elder.phone if elder else "",
                    "dialect": dialect,
                    "due_at": now + max(0.0, eta_seconds),
                    "lang": elder.lang if elder else self.cfg.default_lang,
                    "idem_key": key,
                    "source_call_id": call_id,
                    "created_by": "caller",
                    "created_at": now,
                    "updated_at": now,
                },
            )

    def turn_reached(self, call_id: str) -> Booking | None:
        """The kept place reached the head of the line: fire its booking (exactly once)."""
        booking = store.by_idem(self.db, f"keep_place:{call_id}")
        if booking is None:
            return None
        return store.fire_one(self.db, booking.id, self.clock(), "held")

    def abandoned(self, call_id: str, elder_id: int | None) -> int | None:
        """A caller gave up waiting: offer agents a callback (None if there is no number)."""
        now = self.clock()
        key = f"abandoned:{call_id}"
        with self.db.transaction():
            existing = store.by_idem(self.db, key)
            if existing is not None:
                return existing.id
            elder, dialect = self._caller(call_id, elder_id)
            if elder is None or not elder.phone:
                return None
            # One open "abandoned" task per elder: starting and dropping calls again and
            # again must not stack priority tasks (line-jumping) or ring agents each time.
            already = store.open_of_kind(self.db, elder.id, "abandoned")
            if already is not None:
                return already
            return store.insert(
                self.db,
                {
                    "code": store.new_code(self.db),
                    "kind": "abandoned",
                    "status": "booked",
                    "elder_id": elder.id,
                    "phone": elder.phone,
                    "dialect": dialect,
                    "due_at": now,
                    "lang": elder.lang,
                    "idem_key": key,
                    "source_call_id": call_id,
                    "created_by": "system",
                    "created_at": now,
                    "updated_at": now,
                },
            )

    def _caller(self, call_id: str, elder_id: int | None) -> tuple[Any, str]:
        elder = elders_db.get(self.db, elder_id) if elder_id is not None else None
        call = calls_db.get(self.db, call_id)
        dialect = (call or {}).get("dialect") or (elder.dialect if elder else "cmn")
        return elder, dialect

    def claim_due(self, now: float | None = None) -> list[Booking]:
        """Fire every due booking once (status 'queued') and return them for routing."""
        return scheduler.claim_due(self.db, self.clock() if now is None else now, self.policy)

    def queued(self) -> list[Booking]:
        """Fired bookings no agent has claimed yet (re-route these after a restart)."""
        return [b for b in store.active_bookings(self.db) if b.status == "queued"]

    # --- agents ---------------------------------------------------------------------------

    def claim(self, booking_id: int, agent_id: int, lang: str = "zh_CN") -> Booking:
        """Give the booking to this agent; Conflict (409) if another agent has it."""
        booking = self.get(booking_id)
        if booking.status == "claimed" and booking.claimed_by == agent_id:
            return booking
        if not store.claim(self.db, booking_id, agent_id, self.clock()):
            current = self.get(booking_id)
            if current.status == "claimed" and current.claimed_by != agent_id:
                name = store.agent_names(self.db, [current.claimed_by or 0]).get(
                    current.claimed_by or 0, "?"
                )
                raise Conflict(t(lang, "callbacks.err_claimed", name=name), code="claimed")
            raise Conflict(t(lang, "callbacks.err_closed"), code="closed")
        return self.get(booking_id)

    def _mine(self, booking_id: int, agent_id: int, lang: str) -> Booking:
        booking = self.get(booking_id)
        if booking.status != "claimed" or booking.claimed_by != agent_id:
            raise Forbidden(t(lang, "callbacks.err_not_yours"), code="not_claimed")
        return booking

    def phone_for(self, booking_id: int, agent_id: int, lang: str = "zh_CN") -> str:
        """The unmasked number, only for the agent who claimed the booking (caller audits)."""
        return self._mine(booking_id, agent_id, lang).phone

    def record_attempt(
        self,
        booking_id: int,
        agent_id: int,
        result: str,
        *,
        call_id: str | None = None,
        reschedule_to: float | None = None,
        lang: str = "zh_CN",
    ) -> Booking:
        """Record one call attempt by the claiming agent and move the booking on."""
        if result not in scheduler.RESULTS:
            raise BookingError("callbacks.err_result", "result")
        now = self.clock()
        if result == "rescheduled":
            if reschedule_to is None or reschedule_to <= now:
                raise BookingError("callbacks.err_when", "reschedule_to")
            if reschedule_to > now + 14 * slots.DAY:
                raise BookingError("callbacks.err_when", "reschedule_to")
        with self.db.transaction():
            booking = self._mine(booking_id, agent_id, lang)
            move = scheduler.after_attempt(booking, result, now, self.policy, reschedule_to)
            store.add_attempt(
                self.db, booking.id, at=now, agent_id=agent_id, result=result, call_id=call_id
            )
            changes: dict[str, Any] = {
                "status": move.status,
                "due_at": move.due_at,
                "attempts": move.attempts,
                "updated_at": now,
                "last_call_id": call_id or booking.last_call_id,
            }
            if move.status == "booked":
                changes.update(claimed_by=None, claimed_at=None, queued_at=None)
            if result == "rescheduled":
                changes["slot_start"] = None
            store.update(self.db, booking.id, ("claimed",), **changes)
        updated = self.get(booking_id)
        if move.notify_family:
            self._tell_family_unreached(updated)
        return updated

    def agent_list(self, agent_id: int, lang: str) -> dict[str, list[dict[str, Any]]]:
        """Open bookings grouped due now / overdue / today / later, phones masked."""
        now = self.clock()
        open_ = store.active_bookings(self.db)
        groups = scheduler.group(open_, now, self.tz, self.policy)
        elder_ids = sorted({b.elder_id for b in open_ if b.elder_id is not None})
        counts = store.previous_calls(self.db, elder_ids)
        names = store.agent_names(self.db, sorted({b.claimed_by for b in open_ if b.claimed_by}))
        elders = {i: elders_db.get(self.db, i) for i in elder_ids}
        out: dict[str, list[dict[str, Any]]] = {}
        for key, items in groups.items():
            out[key] = [self._item(b, elders, counts, names, agent_id, lang) for b in items]
        return out

    def _item(
        self, b: Booking, elders: dict, counts: dict, names: dict, agent_id: int, lang: str
    ) -> dict[str, Any]:
        elder = elders.get(b.elder_id)
        return {
            "id": b.id,
            "code": b.code,
            "kind": b.kind,
            "status": b.status,
            "elder": {"name": elder.name if elder else "", "phone": mask_phone(b.phone)},
            "dialect": b.dialect,
            "topic": b.topic,
            "topic_label": t(lang, f"family.topic.{b.topic}") if b.topic else "",
            "note": mask_text(b.note),
            "previous_calls": counts.get(b.elder_id, 0),
            "due_at": b.due_at,
            "due_local": self.local(b.due_at).strftime("%Y-%m-%d %H:%M"),
            "alternates": [self.local(a).strftime("%m-%d %H:%M") for a in b.alternates],
            "attempts": b.attempts,
            "claimed_by": names.get(b.claimed_by) if b.claimed_by else None,
            "mine": b.claimed_by == agent_id,
            "source_call_id": b.source_call_id,
        }

    # --- telling the family ---------------------------------------------------------------

    def ics(self, booking: Booking) -> str:
        from hotline.callbacks.ics import calendar

        start = booking.slot_start or booking.due_at
        lang = booking.lang
        return calendar(
            uid=f"callback-{booking.code}@{_host(self.cfg.public_base_url)}",
            start=start,
            end=start + slots.HOUR,
            summary=t(lang, "family.ics_summary", code=booking.code),
            description=t(lang, "family.ics_description", code=booking.code),
            stamp=booking.updated_at,
            sequence=int(booking.updated_at - booking.created_at),
            cancelled=booking.status == "cancelled",
        )

    def _confirm(self, booking: Booking) -> None:
        lang = booking.lang
        when = self.local(booking.slot_start or booking.due_at).strftime("%Y-%m-%d %H:%M")
        text = t(
            lang, "family.mail_body", code=booking.code, when=when, url=self.manage_url(booking)
        )
        subject = t(lang, "family.mail_subject", code=booking.code)
        self._send(booking, subject, text, with_ics=True)

    def _tell_family_unreached(self, booking: Booking) -> None:
        lang = booking.lang
        text = t(lang, "family.mail_unreached", code=booking.code, url=self.manage_url(booking))
        self._send(booking, t(lang, "family.mail_unreached_subject", code=booking.code), text)
        store.update(self.db, booking.id, (booking.status,), family_notified_at=self.clock())

    def _send(self, booking: Booking, subject: str, text: str, with_ics: bool = False) -> None:
        to = booking.family_contact
        if not to:
            return
        if "@" in to:
            files: tuple[Attachment, ...] = ()
            if with_ics:
                data = self.ics(booking).encode()
                files = (Attachment(f"callback-{booking.code}.ics", data, "text", "calendar"),)
            self.mailer.send(to, subject, text, files)
        else:
            self.sms.send(to, text)


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).hostname or "hotline"
