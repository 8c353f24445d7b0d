// Connection panel data from getStats(): the selected candidate pair (types,
// protocol, relay protocol), RTT, inbound/outbound bitrate, decoded frames;
// and a small live graph of the bitrates.

/** The selected candidate pair of a stats report (Chromium and Firefox). */
function selectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) ?? pair;
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded'))) pair = pair ?? s;
    });
  }
  return pair;
}

/**
 * Reads a summary of `pc`'s stats. Pass the previous summary to get bitrates.
 * @returns {Promise<object>} {pair, local, remote, rttMs, inKbps, outKbps, bytesIn, bytesOut, framesDecoded, frameWidth, frameHeight, at}
 */
export async function readStats(pc, prev) {
  const report = await pc.getStats();
  const at = performance.now();
  let bytesIn = 0, bytesOut = 0, framesDecoded = 0, frameWidth = 0, frameHeight = 0, audioLevel = null;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      bytesIn += s.bytesReceived ?? 0;
      if (s.kind === 'video') {
        framesDecoded += s.framesDecoded ?? 0;
        frameWidth = s.frameWidth ?? frameWidth;
        frameHeight = s.frameHeight ?? frameHeight;
      }
    } else if (s.type === 'outbound-rtp') {
      bytesOut += s.bytesSent ?? 0;
    } else if (s.type === 'data-channel') {
      bytesIn += s.bytesReceived ?? 0;
      bytesOut += s.bytesSent ?? 0;
    } else if (s.type === 'media-source' && s.kind === 'audio') {
      audioLevel = s.audioLevel ?? audioLevel;
    }
  });
  const p = selectedPair(report);
  const cand = (id) => {
    const c = id && report.get(id);
    if (!c) return null;
    return {
      type: c.candidateType,
      protocol: c.protocol,
      relayProtocol: c.relayProtocol ?? null,
      address: c.address ?? c.ip ?? '',
      port: c.port,
      url: c.url ?? null,
    };
  };
  const local = p ? cand(p.localCandidateId) : null;
  const remote = p ? cand(p.remoteCandidateId) : null;
  const dt = prev ? (at - prev.at) / 1000 : 0;
  const rate = (now, before) => (dt > 0 && now >= before ? ((now - before) * 8) / 1000 / dt : 0);
  return {
    pair: local && remote ? `${local.type}/${remote.type}` : null,
    local,
    remote,
    rttMs: p?.currentRoundTripTime != null ? Math.round(p.currentRoundTripTime * 1000) : null,
    bytesIn,
    bytesOut,
    inKbps: prev ? rate(bytesIn, prev.bytesIn) : 0,
    outKbps: prev ? rate(bytesOut, prev.bytesOut) : 0,
    framesDecoded,
    frameWidth,
    frameHeight,
    audioLevel,
    at,
  };
}

/** Formats kbit/s for humans. */
export function formatRate(kbps) {
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(1)} Mb/s`;
  return `${Math.round(kbps)} kb/s`;
}

/** A tiny two-line graph (in and out bitrate) drawn on a canvas. */
export class Sparkline {
  constructor(canvas, points = 60) {
    this.canvas = canvas;
    this.points = points;
    this.inSeries = [];
    this.outSeries = [];
  }

  push(inKbps, outKbps) {
    this.inSeries.push(inKbps);
    this.outSeries.push(outKbps);
    if (this.inSeries.length > this.points) this.inSeries.shift();
    if (this.outSeries.length > this.points) this.outSeries.shift();
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 160, h = c.clientHeight || 40;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const max = Math.max(100, ...this.inSeries, ...this.outSeries);
    const line = (series, color) => {
      if (series.length < 2) return;
      g.beginPath();
      series.forEach((v, i) => {
        // Newest point at the right edge; the graph fills in from the right.
        const x = w - ((series.length - 1 - i) / (this.points - 1)) * w;
        const y = h - 2 - (v / max) * (h - 4);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.strokeStyle = color;
      g.lineWidth = 1.5;
      g.stroke();
    };
    line(this.inSeries, '#4cc38a');
    line(this.outSeries, '#6e9bff');
  }
}
