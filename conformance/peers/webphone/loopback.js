// Keeps WebRTC on 127.0.0.1 (docs/peers.md): Chrome gathers host
// candidates on every interface (loopback only with
// --allow-loopback-in-peer-connection). This wrapper drops every local
// candidate that is not UDP on 127.0.0.1 before StanzaJS sees it (it
// listens with pc.onicecandidate) and strips them from the local SDP, so
// only loopback candidates are ever signalled and checked.
(() => {
  const Orig = window.RTCPeerConnection;
  const keep = c => !c || / udp /i.test(' ' + c + ' ') && / 127\.0\.0\.1 /.test(' ' + c + ' ');
  class LoopbackPC extends Orig {
    set onicecandidate(h) {
      super.onicecandidate = h && (e => { if (e.candidate && !keep(e.candidate.candidate)) return; h(e); });
    }
    get onicecandidate() { return super.onicecandidate; }
    get localDescription() {
      const d = super.localDescription;
      if (!d) return d;
      const sdp = d.sdp.split('\r\n').filter(l => !l.startsWith('a=candidate:') || keep(l)).join('\r\n');
      return { type: d.type, sdp, toJSON() { return { type: this.type, sdp: this.sdp }; } };
    }
  }
  window.RTCPeerConnection = LoopbackPC;
})();
