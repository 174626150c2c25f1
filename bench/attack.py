"""An outsider's floods, run beside the surge by `bench/surge.py --attack` (issue 17).

All from loopback: the server trusts 127.0.0.1 as its proxy, so each party names its address
in X-Forwarded-For (documentation addresses, never contacted); the slow HTTP clients connect
from 127.0.0.2 directly (a different client address, no header).

- slow HTTP: `SLOW_SOCKETS` connections send half a request line, then drip a byte a second;
- caller flood: `FLOOD_CALLERS` anonymous callers from one address each send `call`, into a
  line no agent serves (`FLOOD_DIALECT`), so a real caller's place there shows the flood;
- TTS burst: `TTS_URLS` distinct place-prompt URLs (most outside the fixed set);
- meanwhile a real user loads pages (HTTP latency) and, after the flood, a real caller from
  another address joins the same line (its place).

Reported: attack_http_p95_ms (the real user), attack_caller_position_shift (places the real
caller lost to the flood beyond what the per-address limits allow: 0 is the target) and
attack_errors (errors the real user and the real caller saw).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.error
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from hotline.config import Config

ATTACKER = "198.51.100.66"
TTS_ATTACKER = "198.51.100.67"
REAL_USER = "203.0.113.50"
REAL_CALLER = "203.0.113.51"
FLOOD_DIALECT = "ko"
SLOW_SOCKETS = 40
FLOOD_CALLERS = 100
TTS_URLS = 200


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


async def _slow_http(port: int, stop: float, out: dict[str, int]) -> None:
    """Half-sent requests from one address, dripping; counts refusals and deadline drops."""

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=("127.0.0.2", 0)
            )
        except OSError:
            out["refused"] += 1
            return
        writer.write(b"GET /healthz HTT")
        try:
            while time.monotonic() < stop:
                try:
                    data = await asyncio.wait_for(reader.read(100), 1.0)
                except TimeoutError:
                    writer.write(b"P")  # the drip
                    continue
                out["refused" if data.startswith(b"HTTP/1.1 503") else "dropped"] += 1
                return
            out["held_to_the_end"] += 1
        except OSError:
            out["dropped"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(SLOW_SOCKETS)))


async def _flood(ws_url: str, out: dict[str, Any]) -> None:
    """Anonymous callers from one address, each calling into the unserved line."""

    async def one() -> None:
        try:
            ws = await connect(
                f"{ws_url}?role=caller",
                additional_headers={"X-Forwarded-For": ATTACKER},
                open_timeout=30,
            )
        except Exception:
            out["refused"] += 1
            return
        out["sockets"].append(ws)
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if first.get("type") != "hello":
                out["refused"] += 1
                return
            await ws.send(json.dumps({"type": "call", "dialect": FLOOD_DIALECT}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg.get("type") == "queued":
                    out["queued"] += 1
                    return
                if msg.get("type") == "error":
                    out["refused"] += 1
                    return
        except Exception:
            out["refused"] += 1

    await asyncio.gather(*(one() for _ in range(FLOOD_CALLERS)))


def _get(url: str, address: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    request = urllib.request.Request(url, headers={"X-Forwarded-For": address})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except Exception:
        status = 0
    return status, (time.perf_counter() - t0) * 1000


async def _tts_burst(http: str, out: dict[str, int]) -> None:
    rng = random.Random(17)
    urls = []
    for i in range(TTS_URLS):
        if i % 4 == 0:  # inside the fixed set: renders, limited per address
            urls.append(
                f"{http}/tts/place/zh_CN/cmn/{rng.randint(1, 50)}-{rng.choice((15, 20, 30, 45))}.wav"
            )
        else:
            urls.append(
                f"{http}/tts/place/zh_CN/cmn/{rng.randint(51, 10**6)}-{rng.randint(1, 10**5)}.wav"
            )
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(8)

    async def one(url: str) -> None:
        async with gate:
            status, _ = await loop.run_in_executor(None, _get, url, TTS_ATTACKER)
        out[str(status)] = out.get(str(status), 0) + 1

    await asyncio.gather(*(one(u) for u in urls))


async def _real_user(http: str, stop: float, latencies: list[float], errors: list[str]) -> None:
    loop = asyncio.get_running_loop()
    pages = ("/healthz", "/call", "/family?lang=en")
    n = 0
    while time.monotonic() < stop:
        path = pages[n % len(pages)]
        n += 1
        status, ms = await loop.run_in_executor(None, _get, http + path, REAL_USER)
        latencies.append(ms)
        if status != 200:
            errors.append(f"real user: {path} -> {status}")
        await asyncio.sleep(0.1)


async def _real_caller(ws_url: str, errors: list[str]) -> int | None:
    """A real caller from another address joins the flooded line: their position."""
    try:
        async with connect(
            f"{ws_url}?role=caller",
            additional_headers={"X-Forwarded-For": REAL_CALLER},
            open_timeout=30,
        ) as ws:
            await ws.send(json.dumps({"type": "call", "dialect": FLOOD_DIALECT}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg.get("type") == "queue":
                    return int(msg["position"])
                if msg.get("type") == "error":
                    errors.append(f"real caller: {msg.get('code')}")
                    return None
    except Exception as exc:
        errors.append(f"real caller: {type(exc).__name__}: {exc}"[:200])
        return None


async def run(http_port: int, ws_url: str, seconds: float) -> dict[str, Any]:
    """The floods for `seconds` beside whatever else runs; the attack_* figures."""
    http = f"http://127.0.0.1:{http_port}"
    stop = time.monotonic() + seconds
    slow: dict[str, int] = {"refused": 0, "dropped": 0, "held_to_the_end": 0}
    flood: dict[str, Any] = {"queued": 0, "refused": 0, "sockets": []}
    tts: dict[str, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    user = asyncio.get_running_loop().create_task(_real_user(http, stop, latencies, errors))
    slow_task = asyncio.get_running_loop().create_task(_slow_http(http_port, stop, slow))
    await asyncio.gather(_flood(ws_url, flood), _tts_burst(http, tts))
    position = await _real_caller(ws_url, errors)
    await asyncio.gather(user, slow_task)
    sockets: list[ClientConnection] = flood.pop("sockets")
    for ws in sockets:
        with contextlib.suppress(Exception):
            await ws.close()
    cfg = Config()
    allowed = min(cfg.ws_callers_per_address, cfg.ws_calls_per_address_minute)
    shift = None if position is None else max(0, position - 1 - allowed)
    print(
        f"# attack: slow HTTP {slow}; caller flood {flood} (allowed per address {allowed});"
        f" real caller's place {position}; TTS burst statuses {tts};"
        f" real user {len(latencies)} requests",
        flush=True,
    )
    for line in errors[:5]:
        print(f"# attack error: {line}", flush=True)
    p95 = _percentile(latencies, 95)
    return {
        "attack_http_p95_ms": None if p95 is None else round(p95, 1),
        "attack_caller_position_shift": shift,
        "attack_errors": len(errors),
    }
