// WebRTC for a call: browser-to-browser audio+video, plus an audio-only tap to the gateway.
export async function getMedia() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (e) {
    // No camera (or it is refused): a voice call still works.
    return await navigator.mediaDevices.getUserMedia({ audio: true });
  }
}

export class PeerCall {
  // role "offerer" (the caller) or "answerer" (the agent); send(data) relays a signal.
  constructor({ role, iceServers, stream, remoteVideo, remoteAudio, send, onState }) {
    this.role = role;
    this.send = send;
    this.onState = onState || (() => {});
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.pending = [];
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    this.pc.onicecandidate = (ev) => this.send({ candidate: ev.candidate ? ev.candidate.toJSON() : null });
    this.pc.ontrack = (ev) => {
      const remote = ev.streams[0] || new MediaStream([ev.track]);
      if (remoteVideo.srcObject !== remote) remoteVideo.srcObject = remote;
      // WebAudio reads silence from a remote track unless an element also plays it.
      if (remoteAudio.srcObject !== remote) { remoteAudio.srcObject = remote; remoteAudio.play().catch(() => {}); }
      this.remote = remote;
    };
    this.pc.onconnectionstatechange = () => this.onState(this.pc.connectionState);
  }
  async start() {
    if (this.role !== "offerer") return;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    this.send({ kind: "offer", sdp: this.pc.localDescription.sdp });
  }
  async signal(data) {
    if (data.sdp) {
      await this.pc.setRemoteDescription({ type: data.kind, sdp: data.sdp });
      for (const c of this.pending.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
      if (data.kind === "offer") {
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        this.send({ kind: "answer", sdp: this.pc.localDescription.sdp });
      }
    } else if ("candidate" in data) {
      if (!data.candidate) return;
      if (!this.pc.remoteDescription) this.pending.push(data.candidate);
      else await this.pc.addIceCandidate(data.candidate).catch(() => {});
    }
  }
  close() { try { this.pc.close(); } catch (e) {} }
}

// The tap: our microphone to the gateway on its own audio-only connection (non-trickle).
export class Tap {
  constructor({ stream, iceServers, sendOffer }) {
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    const track = stream.getAudioTracks()[0];
    if (track) this.pc.addTrack(track.clone());
    this.sendOffer = sendOffer;
  }
  async start() {
    this.pc.addTransceiver && this.pc.getTransceivers().length === 0 && this.pc.addTransceiver("audio", { direction: "sendonly" });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await new Promise((resolve) => {
      if (this.pc.iceGatheringState === "complete") return resolve();
      const done = () => { if (this.pc.iceGatheringState === "complete") resolve(); };
      this.pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);
    });
    this.sendOffer(this.pc.localDescription.sdp);
  }
  async answer(sdp) { await this.pc.setRemoteDescription({ type: "answer", sdp }); }
  close() { try { this.pc.getSenders().forEach((s) => s.track && s.track.stop()); this.pc.close(); } catch (e) {} }
}

export function setTrackEnabled(stream, kind, enabled) {
  if (!stream) return;
  for (const t of stream.getTracks()) if (t.kind === kind) t.enabled = enabled;
}
