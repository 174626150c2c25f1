// The websocket to the live side, with automatic reconnect and backoff.
export function wsBase(boot) {
  if (boot.ws_url) return boot.ws_url;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.hostname}:${boot.ws_port}/ws`;
}

export class Live {
  // urlFn() returns the URL (or a promise of it) for each (re)connection attempt.
  constructor(urlFn, { onMessage, onOpen, onDown }) {
    this.urlFn = urlFn;
    this.onMessage = onMessage;
    this.onOpen = onOpen || (() => {});
    this.onDown = onDown || (() => {});
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
  }
  async connect() {
    if (this.stopped) return;
    let url;
    try { url = await this.urlFn(); } catch (e) { this._retry(); return; }
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => { this.attempt = 0; this.onOpen(); };
    ws.onmessage = (ev) => {
      let msg; try { msg = JSON.parse(ev.data); } catch (e) { return; }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4000 || this.stopped) { this.onDown(ev, false); return; }
      this.onDown(ev, true);
      this._retry();
    };
  }
  _retry() {
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(msg)); return true; }
    return false;
  }
  stop() { this.stopped = true; if (this.ws) this.ws.close(); }
  resume() { if (!this.stopped) return; this.stopped = false; this.attempt = 0; this.connect(); }
}
