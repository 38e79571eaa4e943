// stox web phone: one StanzaJS client in headless Chromium, driven by
// drive.mjs. Configuration comes in the URL (?cfg=JSON); commands come
// from drive.mjs as window.phone.dial(o) / window.phone.answer(o); results
// go back through window.emit (exposed by drive.mjs). docs/peers.md.
'use strict';
const CFG = JSON.parse(new URLSearchParams(location.search).get('cfg'));
const NS_JMI = 'urn:xmpp:jingle-message:0', NS_RTP = 'urn:xmpp:jingle:apps:rtp:1';
// Raw audio: Chrome's processing would squash a steady tone (docs/peers.md).
const MIC = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
const sleep = ms => new Promise(r => setTimeout(r, ms));
const log = (...a) => console.log(a.map(x => typeof x === 'string' ? x : JSON.stringify(x)).join(' '));
const emit = m => window.emit(m);

const client = XMPP.createClient({
  jid: CFG.jid, password: CFG.password, resource: CFG.resource || 'web',
  transports: { websocket: CFG.ws, bosh: false },
  // No STUN: the default is stun.l.google.com, which must not be reached.
  jingle: { iceServers: [] },
});
// XEP-0353 as JXT definitions: StanzaJS 12 has none.
const JMI_KINDS = ['propose', 'ringing', 'proceed', 'accept', 'reject', 'retract', 'finish'];
for (const el of JMI_KINDS)
  client.stanzas.define({ element: el, namespace: NS_JMI, path: 'message.jmi_' + el,
    fields: { id: XMPP.JXT.attribute('id'), media: XMPP.JXT.childAttribute(NS_RTP, 'description', 'media') } });
// A Jingle <reason/> inside retract, reject and finish (XEP-0353 §3.3, §3.5).
const REASONS = ['alternative-session', 'busy', 'cancel', 'connectivity-error', 'decline', 'expired', 'failed-application',
  'failed-transport', 'general-error', 'gone', 'incompatible-parameters', 'media-error', 'security-error', 'success',
  'timeout', 'unsupported-applications', 'unsupported-transports'];
for (const el of ['retract', 'reject', 'finish'])
  client.stanzas.define({ element: 'reason', namespace: 'urn:xmpp:jingle:1', path: `message.jmi_${el}.reason`,
    fields: { condition: XMPP.JXT.childEnum(null, REASONS), text: XMPP.JXT.childText(null, 'text') } });
const reasonOf = (v, dflt) => (v && v.reason && v.reason.condition) || dflt;

let call = null;            // the call in progress (one at a time)
let answer = { mode: 'accept', delayMs: 0, codec: '', hangupAfterMs: 0 };

function newCall(dir) {
  call = { dir, connected: false, terminateReason: '', codec: '', packetsReceived: 0, packetsSent: 0,
    audioLevel: 0, freqHz: 0, jmi: [], transcript: [], err: '', sess: null, done: null, meter: null };
  call.finished = new Promise(r => call.done = r);
  return call;
}
client.on('raw:incoming', x => { log('<<< ' + x); if (call && /urn:xmpp:jingle/.test(x)) call.transcript.push('<<< ' + x); });
client.on('raw:outgoing', x => { log('>>> ' + x); if (call && /urn:xmpp:jingle/.test(x)) call.transcript.push('>>> ' + x); });

// meter measures the received audio with WebAudio: RMS, and frequency by
// rising zero crossings over the non-silent blocks (as wav.go does).
function meter(stream) {
  const ac = new AudioContext(), an = ac.createAnalyser(); an.fftSize = 2048;
  ac.createMediaStreamSource(stream).connect(an);
  const buf = new Float32Array(an.fftSize), m = { sum2: 0, n: 0, ups: 0, ac };
  let last = 0;
  m.timer = setInterval(() => {   // 2048 samples = 43 ms at 48 kHz; sampled every 40 ms
    an.getFloatTimeDomainData(buf);
    let s = 0, ups = 0, prev = buf[0];
    for (const v of buf) { s += v * v; if (prev < 0 && v >= 0) ups++; prev = v; }
    if (Math.sqrt(s / buf.length) >= 0.02) { m.sum2 += s; m.n += buf.length; m.ups += ups; }
    last = ac.sampleRate;
  }, 40);
  m.result = () => m.n ? { rms: Math.sqrt(m.sum2 / m.n), hz: m.ups * last / m.n } : { rms: 0, hz: 0 };
  m.stop = () => { clearInterval(m.timer); ac.close().catch(() => {}); };
  return m;
}

// poll keeps the latest RTP stats: after session-terminate the
// RTCPeerConnection is closed and getStats gives nothing.
async function poll(c) {
  while (c.sess && !c.ended) {
    try {
      const codecs = {};
      let inbound, outbound;
      (await c.sess.pc.getStats()).forEach(s => {
        if (s.type === 'codec') codecs[s.id] = s.mimeType.replace(/^audio\//, '');
        if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
        if (s.type === 'outbound-rtp' && s.kind === 'audio') outbound = s;
      });
      if (inbound) { c.packetsReceived = inbound.packetsReceived || 0; c.codec = codecs[inbound.codecId] || c.codec; }
      if (outbound) { c.packetsSent = outbound.packetsSent || 0; c.codec = c.codec || codecs[outbound.codecId] || ''; }
    } catch (e) { /* closed */ }
    if (c.meter) { const r = c.meter.result(); c.audioLevel = r.rms; c.freqHz = r.hz; }
    await sleep(200);
  }
}

// listen plays and measures the received audio (a sink also makes Chrome
// decode it). The callee's track comes while session-initiate is
// processed, before 'incoming', so it is also taken from the receivers.
function listen(c) {
  if (c.meter || !c.sess) return;
  const tracks = c.sess.pc.getReceivers().map(r => r.track).filter(t => t && t.kind === 'audio');
  if (!tracks.length) return;
  const stream = new MediaStream(tracks);
  const el = document.getElementById('out'); el.srcObject = stream; el.play().catch(() => {});
  c.meter = meter(stream);
}
client.jingle.on('peerTrackAdded', sess => { if (call && call.sess === sess) listen(call); });
client.jingle.on('connectionState', (sess, state) => {
  if (call && call.sess === sess && state === 'connected') {
    call.connected = true;
    if (call.hangupAfterMs > 0) setTimeout(() => hangup(call, call.reason || 'success'), call.hangupAfterMs);
  }
});
client.on('jingle:terminated', (sess, reason) => {
  if (!call || call.sess !== sess) return;
  call.terminateReason = (reason && reason.condition) || String(reason || '');
  finish(call);
});

async function finish(c) {
  if (c.ended) return;
  await sleep(300);                 // one last stats poll sees the final counters
  c.ended = true;
  if (c.meter) { const r = c.meter.result(); c.audioLevel = r.rms; c.freqHz = r.hz; c.meter.stop(); }
  const { sess, done, finished, meter, timer, ...res } = c;
  res.codec = c.codec;
  if (call === c) call = null;
  clearTimeout(timer);
  emit({ type: c.dir === 'out' ? 'dialed' : 'call', id: c.id, result: res });
  done();
}

async function hangup(c, reason) {
  if (c.ended) return;
  await sleep(250);                 // let the poller see the last packets
  if (c.sess && c.sess.state !== 'ended') { c.terminateReason = reason; c.sess.end(reason); }
  else finish(c);
}

async function addMic(sess, codec) {
  const ms = await navigator.mediaDevices.getUserMedia({ audio: MIC });
  for (const t of ms.getTracks()) await sess.addTrack(t, ms);
  if (codec) {  // offer or accept only this codec (and telephone-event)
    const caps = RTCRtpReceiver.getCapabilities('audio').codecs
      .filter(c => c.mimeType.toLowerCase() === 'audio/' + codec.toLowerCase() || c.mimeType === 'audio/telephone-event');
    sess.pc.getTransceivers()[0].setCodecPreferences(caps);
  }
}

// dial places a call: JMI propose to the bare JID first when o.jmi,
// otherwise session-initiate straight to o.to (a full JID).
async function dial(o) {
  if (call) return emit({ type: 'dialed', id: o.id, result: { err: 'busy: a call is in progress' } });
  const c = newCall('out');
  Object.assign(c, { id: o.id, hangupAfterMs: o.hangupAfterMs, reason: o.reason });
  c.timer = setTimeout(() => {
    c.err = c.err || 'timeout';
    if (c.sess) return hangup(c, c.connected ? 'success' : 'cancel');
    if (c.jmiWait) {   // no proceed yet: take the proposal back (XEP-0353 §3.3)
      const retract = { id: c.jmiID, reason: { condition: 'cancel' } };
      client.sendMessage({ to: o.to, type: 'chat', jmi_retract: retract });
      c.jmi.push('retract');
      c.jmiWait({ jmi_retract: retract });
    } else finish(c);
  }, o.timeoutMs);
  try {
    let peer = o.to, sid;
    if (o.jmi) {
      sid = 'jmi-' + Math.random().toString(36).slice(2);
      const reply = new Promise(r => { c.jmiWait = r; });
      c.jmiID = sid;
      client.sendMessage({ to: o.to, type: 'chat', jmi_propose: { id: sid, media: 'audio' } });
      c.jmi.push('propose');
      const m = await reply;
      if (c.ended) return;
      // The reason of reject/retract, or the kind when it has none.
      if (!m.jmi_proceed) { c.terminateReason = m.jmi_reject ? reasonOf(m.jmi_reject, 'reject') : reasonOf(m.jmi_retract, 'retract'); return finish(c); }
      peer = m.from;
    }
    const sess = client.jingle.createMediaSession(peer, sid);
    c.sess = sess;
    await addMic(sess, o.codec);
    poll(c);
    await sess.start();
  } catch (e) { c.err = String(e && (e.message || e)); finish(c); }
}

client.on('message', m => {
  for (const k of JMI_KINDS) {
    const v = m['jmi_' + k];
    if (!v) continue;
    if (k === 'propose') return onPropose(m);
    if (call && call.jmiID === v.id) {
      call.jmi.push(k);
      if (call.dir === 'in' && !call.sess && k === 'retract') { call.terminateReason = reasonOf(v, 'retract'); finish(call); }
      if (call.jmiWait && (k === 'proceed' || k === 'reject' || k === 'retract')) call.jmiWait(m);
    }
  }
});

// onPropose answers a JMI propose by the answer mode (XEP-0353 §3).
function onPropose(m) {
  const id = m.jmi_propose.id, to = m.from;
  if (call) { client.sendMessage({ to, type: 'chat', jmi_reject: { id, reason: { condition: 'busy' } } }); return; }
  const c = newCall('in');
  c.jmi.push('propose'); c.jmiID = id;
  c.timer = setTimeout(() => { c.err = c.err || 'timeout'; c.sess ? hangup(c, c.connected ? 'success' : 'timeout') : finish(c); },
    answer.timeoutMs || 60000);
  const send = (k, reason) => {
    client.sendMessage({ to, type: 'chat', ['jmi_' + k]: reason ? { id, reason: { condition: reason } } : { id } });
    c.jmi.push(k);
  };
  switch (answer.mode) {
    case 'ignore': return;
    case 'busy': case 'decline': send('reject', answer.mode); c.terminateReason = answer.mode; return finish(c);
    case 'ring': send('ringing'); return;
    default: send('ringing'); setTimeout(() => { if (!c.ended) send('proceed'); }, answer.delayMs);
  }
}

client.on('jingle:incoming', async sess => {
  let c = call;
  if (c && c.dir === 'in' && !c.sess && (!c.jmiID || c.jmiID === sess.sid)) {
    // the session that follows our JMI proceed: accept at once
  } else if (c) { sess.end('busy'); return; }
  else {
    c = newCall('in');
    c.timer = setTimeout(() => { c.err = c.err || 'timeout'; hangup(c, c.connected ? 'success' : 'timeout'); }, answer.timeoutMs || 60000);
  }
  c.sess = sess; c.hangupAfterMs = answer.hangupAfterMs;
  listen(c);
  poll(c);
  try {
    switch (c.jmiID ? 'accept' : answer.mode) {
      case 'ignore': return;
      case 'busy': return sess.end('busy');
      case 'decline': return sess.decline();
      case 'ring': return sess.ring();
      default:
        if (answer.delayMs > 0 && !c.jmiID) { sess.ring(); await sleep(answer.delayMs); }
        await addMic(sess, answer.codec);
        await sess.accept();
    }
  } catch (e) { c.err = String(e && (e.message || e)); hangup(c, 'general-error'); }
});

// hold puts the call in progress on hold (session-info <hold/>) or back
// (<active/>), XEP-0167 §7; StanzaJS does not change the media direction.
function hold(o) {
  if (!call || !call.sess) return log('hold: no call');
  if (o.on) call.sess.hold(); else call.sess.resume();
}

// dtmf sends o.tones as RFC 4733 telephone-events on the call's audio
// sender (RTCDTMFSender: 100 ms each, 70 ms apart).
function dtmf(o) {
  const s = call && call.sess && call.sess.pc.getSenders().find(x => x.dtmf);
  if (!s) return log('dtmf: no audio sender');
  if (!s.dtmf.canInsertDTMF) return log('dtmf: cannot insert (no telephone-event negotiated)');
  s.dtmf.insertDTMF(o.tones, 100, 70);
  log('dtmf: sending ' + o.tones);
}

window.phone = {
  dial,
  hold,
  dtmf,
  answer: o => { answer = o; },
};
// Ready once the server has our available presence (RFC 6121 §4.2.2: it
// sends it back to the sending resource): before that, a message to the
// bare JID is not delivered to this resource and may bounce.
let readySent = false;
function ready() {
  if (!readySent) { readySent = true; emit({ type: 'ready', jid: client.jid }); }
}
client.on('presence', p => { if (p.from === client.jid && p.type !== 'unavailable') ready(); });
client.on('session:started', () => { client.sendPresence(); setTimeout(ready, 3000); });
client.on('auth:failed', () => emit({ type: 'fatal', err: 'auth failed for ' + CFG.jid }));
client.on('disconnected', () => emit({ type: 'disconnected' }));
client.connect();
