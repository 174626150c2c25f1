"""`hotline serve`: one process, two listeners (see DESIGN.md).

Main thread: the asyncio loop with the websocket server, the switchboard and the gateway.
Thread "http": waitress serving the Flask app. SIGTERM/SIGINT stop both gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline import photos
from hotline import services as services_mod
from hotline.asr.farm import WorkerFarm, parse_workers
from hotline.asr.registry import Dialect, Registry
from hotline.asr.service import CaptionService
from hotline.asr.transcriber import CaptionEngine
from hotline.asr.warmup import warm_up_speech
from hotline.callbacks.service import CallbackService
from hotline.calls.gateway import Gateway, Taps, use_loopback_candidates
from hotline.cluster.media import ClusterGateway
from hotline.cluster.mode import ClusterMode
from hotline.config import Config
from hotline.db import transcripts as transcripts_db
from hotline.guidance.live import LiveGuidance
from hotline.live.callbacks import LiveCallbacks
from hotline.live.captions import LiveCaptions
from hotline.live.context import LiveContext
from hotline.live.family import LiveFamily
from hotline.live.hold import LiveHold
from hotline.live.identity import LiveIdentity
from hotline.live.monitor import Monitoring
from hotline.live.server import LiveServer
from hotline.live.switchboard import Switchboard
from hotline.live.transfer import LiveTransfer
from hotline.privacy import MaskingFilter
from hotline.web import create_app, listener

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started hotline: its ports and parts (tests use this directly)."""

    services: services_mod.Services
    switchboard: Switchboard
    live: LiveServer
    gateway: Taps
    captions: LiveCaptions
    http_port: int
    ws_port: int
    _http: Any
    _http_thread: threading.Thread
    _ticker: asyncio.Task[None] | None
    cluster: ClusterMode | None = None

    async def stop(self) -> None:
        """Stop serving: tell everyone, end calls, close listeners (idempotent)."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self.cluster is None:
            await self.switchboard.close()
        else:  # calls stay open in the store: the next holder of the line restores them
            self.switchboard.closing = True
        await self.live.close()
        self.switchboard.shutdown()
        if self.cluster is not None:
            await self.cluster.close()
        await self.gateway.close()
        await asyncio.to_thread(self.captions.engine.close)
        self._http.close()
        self._http_thread.join(timeout=5)
        self.services.speech.close()


def install_log_masking() -> None:
    """Mask phone/ID/card numbers in every log line, whatever logger wrote it."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


async def start(cfg: Config) -> Running:
    """Start everything on the running loop; ports 0 pick free ports."""
    install_log_masking()
    if cfg.ice_loopback:
        use_loopback_candidates()
    services = services_mod.build(cfg)
    services.hub.bind(asyncio.get_running_loop())
    clustered = bool(cfg.database_url and cfg.redis_url)
    # In a cluster each node answers the taps of its own sockets (hotline/cluster/media.py).
    cluster_taps = ClusterGateway(Gateway()) if clustered else None
    gateway: Taps = cluster_taps or Gateway()
    switchboard = Switchboard(
        cfg,
        services.db,
        services.hub,
        gateway,
        prompts=services.prompts,
        ice_servers=lambda: _ice_for_browsers(cfg),
        # A console whose node died reconnects to another one: its call waits for it.
        agent_grace=cfg.rejoin_seconds if clustered else 0.0,
    )
    if not clustered:  # in a cluster, the node that takes the line's lock restores it
        await switchboard.start()
    live = LiveServer(cfg, switchboard, services.signer, set(services.registry.dialects))
    # Each plug-in subscribes to the switchboard's call events as it is built: they are told
    # of an event in this order (guidance, captions, context, hold, transfer, family,
    # identity, callbacks).
    LiveGuidance(switchboard, services.guidance, services.prompts).attach(live)
    engine = _caption_service(cfg, services.registry)
    captions = LiveCaptions(switchboard, engine)
    captions.attach(live)
    Monitoring(switchboard).attach(live)
    LiveContext(switchboard).attach(live)
    LiveHold(switchboard, services.prompts, cfg).attach(live)
    dialect_ids = set(services.registry.dialects)
    LiveTransfer(switchboard, services.prompts, cfg, dialect_ids).attach(live)
    family = LiveFamily(switchboard, cfg)
    family.attach(live)
    LiveIdentity(switchboard, services.prompts, cfg).attach(live)
    callbacks = LiveCallbacks(
        switchboard,
        CallbackService(services.db, cfg, signer=services.signer),
        services.prompts,
    )
    callbacks.attach(live)
    if not clustered:
        await callbacks.requeue_fired()

    def snapshot() -> dict[str, Any]:
        snap = switchboard.snapshot()
        snap["ws_connections"] = len(live.conns)
        snap["ws_errors"] = live.errors
        snap["caption_streams"] = captions.stats()
        snap["caption_latency"] = captions.latency()
        if isinstance(engine, WorkerFarm):
            snap["asr_workers"] = engine.health()
        return snap

    services._snapshot = snapshot
    services._kick = switchboard.kick
    services._family_join = family.link_for_elder
    services._close_sockets = live.close_account

    def warm() -> None:
        if cfg.caption_warm and isinstance(engine, CaptionEngine):
            threading.Thread(
                target=_warm_captions, args=(services, engine, cfg.caption_warm), daemon=True
            ).start()

    cluster = None
    if cluster_taps is not None:
        cluster = ClusterMode(cfg, services, switchboard, live, cluster_taps)

        async def became_holder() -> None:
            await switchboard.start(keep_answered=True)
            await callbacks.requeue_fired()
            warm()
            running._ticker = asyncio.get_running_loop().create_task(
                _tick(switchboard, services, callbacks)
            )

        await cluster.start()
    else:
        warm()
    ws_port = await live.start(cfg.host, cfg.ws_port)
    services.ws_port = ws_port
    app = create_app(services)
    http = listener.build(app, cfg, host=cfg.host, port=cfg.http_port)
    http_port = http.effective_port
    thread = threading.Thread(target=http.run, name="http", daemon=True)
    thread.start()
    ticker = None
    if cluster is None:
        ticker = asyncio.get_running_loop().create_task(_tick(switchboard, services, callbacks))
    log.info(
        "hotline serving http on %s:%s, websocket on %s:%s", cfg.host, http_port, cfg.host, ws_port
    )
    running = Running(
        services,
        switchboard,
        live,
        gateway,
        captions,
        http_port,
        ws_port,
        http,
        thread,
        ticker,
        cluster,
    )
    if cluster is not None:
        await cluster.contend(became_holder)
    return running


def _caption_service(cfg: Config, registry: Registry) -> CaptionService:
    """Speech workers when HOTLINE_ASR_WORKERS names some, else in-process decoding."""
    workers = parse_workers(cfg.asr_workers, registry)
    if workers:
        log.info("captions from speech workers: %s", workers)
        return WorkerFarm(registry, workers, vad=cfg.captions_vad)
    return CaptionEngine(
        cfg,
        registry,
        workers=cfg.caption_workers,
        deterministic=True if cfg.captions_deterministic else None,
        vad=cfg.captions_vad,
    )


def _ice_for_browsers(cfg: Config) -> list[dict[str, Any]]:
    servers = list(cfg.ice_servers)
    if cfg.turn_urls and cfg.turn_secret:
        from hotline.turn import credentials

        servers.append(credentials(cfg.turn_secret, cfg.turn_urls, cfg.turn_ttl_seconds))
    return servers


def _warm_captions(services: services_mod.Services, engine: CaptionEngine, n: int) -> None:
    """Warm `n` recognizers per installed model with speech in its language (asr/warmup.py)."""
    registry = services.registry
    by_model: dict[str, Dialect] = {}
    for d in sorted(registry.dialects.values(), key=lambda d: not d.warm_up):
        spec = registry.model_of(d.id)
        if spec is not None and spec.name not in by_model and engine.available(d.id)[0]:
            by_model[spec.name] = d
    for name, d in by_model.items():
        try:
            speech = warm_up_speech(
                d, registry.models[name].sample_rate, services.speech.render_sync
            )
        except Exception:  # no voice: a noise warm-up still loads the model and makes the pool
            log.warning("warm-up speech for %s could not be rendered", d.id, exc_info=True)
            speech = b""
        engine.keep_warm(d.id, n, speech)


async def _tick(
    switchboard: Switchboard, services: services_mod.Services, callbacks: LiveCallbacks
) -> None:
    """Once a second: tap levels to consoles. Every 5 s: due callbacks into the line.
    Once an hour: enforce transcript retention."""
    seconds = 0
    while True:
        try:
            switchboard.levels()
            if seconds % 5 == 0 and not switchboard.closing:
                await callbacks.poll()
            if seconds % 3600 == 0:
                purged = await asyncio.to_thread(
                    transcripts_db.purge_older_than,
                    services.db,
                    services.cfg.transcript_retention_days,
                )
                if purged:
                    log.info("retention: purged %d transcript lines", purged)
                gone = await asyncio.to_thread(
                    photos.purge,
                    services.db,
                    Path(services.cfg.data_dir) / "photos",
                    services.cfg.photo_retention_days,
                )
                if gone:
                    log.info("retention: deleted %d registered photos", gone)
        except Exception:
            log.exception("tick failed")
        seconds += 1
        await asyncio.sleep(1.0)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; the gateway's decoder
    threads (one per tapped call) and the worker pools then keep tens of MB of half-empty
    arenas. Two arenas hold the same data in less memory. (No effect off glibc.)"""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


def run(cfg: Config) -> int:
    """Serve until SIGTERM/SIGINT."""
    limit_malloc_arenas()

    async def main() -> None:
        running = await start(cfg)
        print(
            f"Elder Hotline is running: http://localhost:{running.http_port}/ (websocket :{running.ws_port})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await running.stop()

    asyncio.run(main())
    return 0
