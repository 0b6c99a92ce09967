// ringturn's 1-to-1 call page: the classic WebRTC tutorial flow over the
// signaling WebSocket (/ws) and ringturn's TURN relay (/api/ice-servers).
//
// join(room) → joined(room, id); the one already there gets otherJoin and
// calls (offer); the joiner answers; candidates trickle both ways with
// addIceCandidate. bye: the other side left. full: the room holds two.
//
// window.ringturn exposes the page's state for tests and for curious people.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    room: $('room'), form: $('join-form'), join: $('join'), hangup: $('hangup'),
    restart: $('restart-ice'), copy: $('copy-link'), notice: $('notice'),
    local: $('local-video'), remote: $('remote-video'), overlay: $('overlay'),
    overlayTitle: $('overlay-title'), overlayText: $('overlay-text'), chip: $('pair-chip'),
    badgeSig: $('badge-signaling'), badgeIce: $('badge-ice'), log: $('log'),
    policy: $('ice-policy'), bundle: $('bundle-policy'), mux: $('rtcp-mux-policy'), pool: $('pool-size'),
    st: {
      phase: $('st-phase'), room: $('st-room'), id: $('st-id'), signaling: $('st-signaling'),
      ice: $('st-ice'), conn: $('st-conn'), pair: $('st-pair'), relay: $('st-relay'),
      bitrate: $('st-bitrate'), rtt: $('st-rtt'), video: $('st-video'),
    },
  };

  // Everything a test (or a person in the console) may want to look at.
  const pub = {
    phase: 'idle',        // idle | joining | waiting | calling | connected | full | left | error
    room: null,
    id: null,
    peer: null,
    events: [],           // {t, dir: 'in'|'out', type, data?}
    offersSent: 0,
    offersReceived: 0,
    answersSent: 0,
    answersReceived: 0,
    candidatesSent: 0,
    candidatesReceived: 0,
    iceServers: null,
    stats: {},
    errors: [],
  };
  window.ringturn = pub;

  let ws = null;
  let pc = null;
  let localStream = null;
  let polite = false;          // the joiner yields on offer glare
  let makingOffer = false;
  let pendingCandidates = [];
  let statsTimer = null;
  let lastBytes = null;
  // Signaling messages are handled one at a time, in order.
  let inbox = Promise.resolve();

  // ---- small helpers -------------------------------------------------------

  function now() {
    const d = new Date();
    return d.toTimeString().slice(0, 8);
  }

  function log(dir, text) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = now();
    const span = document.createElement('span');
    span.className = dir;
    span.textContent = (dir === 'in' ? '← ' : dir === 'out' ? '→ ' : '• ') + text;
    li.append(time, span);
    ui.log.append(li);
    while (ui.log.children.length > 80) ui.log.firstChild.remove();
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function notice(text, kind) {
    if (!text) { ui.notice.hidden = true; return; }
    ui.notice.textContent = text;
    ui.notice.className = 'notice' + (kind ? ' ' + kind : '');
    ui.notice.hidden = false;
  }

  function overlay(title, text) {
    if (!title) { ui.overlay.hidden = true; return; }
    ui.overlayTitle.textContent = title;
    ui.overlayText.textContent = text || '';
    ui.overlay.hidden = false;
  }

  function setText(el, text, cls) {
    el.textContent = text;
    el.className = (el.classList.contains('mono') ? 'mono ' : '') + (cls || '');
  }

  function stateClass(s) {
    if (s === 'connected' || s === 'completed' || s === 'open' || s === 'stable') return 'good-text';
    if (s === 'failed' || s === 'closed' || s === 'disconnected') return 'bad-text';
    return 'warn-text';
  }

  function setPhase(phase) {
    pub.phase = phase;
    setText(ui.st.phase, phase, phase === 'connected' ? 'good-text' : phase === 'full' || phase === 'error' ? 'bad-text' : '');
    const inCall = ['joining', 'waiting', 'calling', 'connected'].includes(phase);
    ui.join.disabled = inCall;
    ui.room.disabled = inCall;
    ui.hangup.disabled = !inCall;
    ui.restart.disabled = !(pc && (phase === 'calling' || phase === 'connected'));
  }

  function badge(el, text, kind) {
    el.textContent = text;
    el.className = 'badge' + (kind ? ' ' + kind : '');
  }

  function updateSignalingStatus() {
    const wsState = ws ? ['connecting', 'open', 'closing', 'closed'][ws.readyState] : 'off';
    const sig = pc ? pc.signalingState : '–';
    setText(ui.st.signaling, 'ws ' + wsState + ' · ' + sig, wsState === 'off' ? '' : stateClass(wsState));
    badge(ui.badgeSig, 'signaling: ' + wsState, wsState === 'open' ? 'good' : wsState === 'off' ? '' : 'warn');
  }

  function rtcConfig(iceServers) {
    return {
      iceServers: iceServers,
      iceTransportPolicy: ui.policy.value,
      bundlePolicy: ui.bundle.value,
      rtcpMuxPolicy: ui.mux.value,
      iceCandidatePoolSize: Math.max(0, Math.min(10, parseInt(ui.pool.value, 10) || 0)),
    };
  }

  // ---- signaling -----------------------------------------------------------

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    const ev = { t: Date.now(), dir: 'out', type: msg.type };
    if (msg.data && msg.data.type) ev.data = msg.data.type;
    pub.events.push(ev);
    if (msg.type !== 'message' || msg.data.type !== 'candidate') {
      log('out', msg.type + (msg.data && msg.data.type ? ' ' + msg.data.type : '') + (msg.room ? ' · ' + msg.room : ''));
    }
    return true;
  }

  function signal(data) {
    return send({ type: 'message', room: pub.room, data: data });
  }

  function openSignaling() {
    return new Promise((resolve, reject) => {
      const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
      const socket = new WebSocket(url);
      ws = socket;
      updateSignalingStatus();
      socket.onopen = () => { updateSignalingStatus(); resolve(socket); };
      socket.onerror = () => reject(new Error('cannot reach the signaling server'));
      socket.onclose = (e) => {
        if (ws === socket) {
          ws = null;
          updateSignalingStatus();
          if (['joining', 'waiting', 'calling', 'connected'].includes(pub.phase)) {
            log('err', 'signaling closed' + (e.code ? ' (' + e.code + (e.reason ? ' ' + e.reason : '') + ')' : ''));
            notice('The signaling connection closed. A call in progress keeps going; join again to reconnect.', 'bad');
          }
        }
      };
      socket.onmessage = (e) => {
        let msg;
        try { msg = JSON.parse(e.data); } catch (err) { return; }
        inbox = inbox.then(() => onSignalingMessage(msg)).catch((err) => fail('handling ' + msg.type, err));
      };
    });
  }

  async function onSignalingMessage(msg) {
    const ev = { t: Date.now(), dir: 'in', type: msg.type };
    if (msg.data && msg.data.type) ev.data = msg.data.type;
    if (msg.code) ev.code = msg.code;
    pub.events.push(ev);
    if (msg.type !== 'message' || !msg.data || msg.data.type !== 'candidate') {
      log('in', msg.type + (msg.data && msg.data.type ? ' ' + msg.data.type : '') + (msg.code ? ' ' + msg.code : '') + (msg.id && msg.id !== pub.id ? ' · ' + msg.id.slice(0, 8) : ''));
    }
    switch (msg.type) {
      case 'joined':
        pub.id = msg.id;
        setText(ui.st.id, msg.id.slice(0, 12));
        setPhase('waiting');
        overlay('Waiting for the other side', 'Room “' + pub.room + '”. Share the link; the call starts when someone joins.');
        break;
      case 'otherJoin':
        // We were here first: we call.
        pub.peer = msg.id;
        polite = false;
        await startCall();
        break;
      case 'full':
        setPhase('full');
        notice('Room “' + msg.room + '” is full: it already has two people. Pick another room.', 'bad');
        overlay('Room is full', 'Room “' + msg.room + '” already has two people.');
        teardown(false);
        closeSignaling();
        break;
      case 'bye':
        log('info', 'the other side left');
        closePeer();
        pub.peer = null;
        setPhase('waiting');
        overlay('The other side hung up', 'Still in room “' + pub.room + '”. The call starts again when someone joins.');
        break;
      case 'leaved':
        setPhase('left');
        closeSignaling();
        break;
      case 'message':
        await onSignal(msg.data || {});
        break;
      case 'error':
        pub.errors.push(msg);
        log('err', msg.code + ': ' + msg.message);
        notice('Signaling error: ' + msg.message, 'bad');
        break;
      default:
        break;
    }
  }

  async function onSignal(data) {
    if (data.type === 'offer') {
      pub.offersReceived++;
      if (!pc) {
        polite = true;
        await createPeer();
      }
      const collision = makingOffer || pc.signalingState !== 'stable';
      if (collision && !polite) {
        log('info', 'ignoring a colliding offer');
        return;
      }
      await pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
      await flushCandidates();
      await pc.setLocalDescription(await pc.createAnswer());
      pub.answersSent++;
      signal({ type: 'answer', sdp: pc.localDescription.sdp });
      setPhase(pub.phase === 'connected' ? 'connected' : 'calling');
    } else if (data.type === 'answer') {
      if (!pc || pc.signalingState !== 'have-local-offer') return;
      pub.answersReceived++;
      await pc.setRemoteDescription({ type: 'answer', sdp: data.sdp });
      await flushCandidates();
    } else if (data.type === 'candidate') {
      pub.candidatesReceived++;
      const init = {
        candidate: data.candidate,
        sdpMid: data.id !== undefined ? data.id : data.sdpMid,
        sdpMLineIndex: data.label !== undefined ? data.label : data.sdpMLineIndex,
      };
      if (!init.candidate) return;
      if (pc && pc.remoteDescription) {
        await addCandidate(init);
      } else {
        pendingCandidates.push(init);
      }
    }
  }

  async function addCandidate(init) {
    try {
      await pc.addIceCandidate(init);
    } catch (err) {
      log('err', 'addIceCandidate: ' + err.message);
    }
  }

  async function flushCandidates() {
    const list = pendingCandidates;
    pendingCandidates = [];
    for (const c of list) await addCandidate(c);
  }

  // ---- media and the peer connection --------------------------------------

  async function getMedia() {
    const tries = [
      { video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: true },
      { video: true, audio: false },
      { video: false, audio: true },
    ];
    for (const c of tries) {
      try {
        return await navigator.mediaDevices.getUserMedia(c);
      } catch (err) {
        log('err', 'getUserMedia(' + (c.video ? 'video' : '') + (c.video && c.audio ? '+' : '') + (c.audio ? 'audio' : '') + '): ' + err.name);
      }
    }
    notice('No camera or microphone: you will see and hear the other side only.', '');
    return null;
  }

  async function fetchIceServers() {
    const res = await fetch('/api/ice-servers', { cache: 'no-store' });
    if (!res.ok) throw new Error('GET /api/ice-servers: ' + res.status);
    const body = await res.json();
    pub.iceServers = body;
    if (body.turnUnavailable) {
      log('err', 'TURN unavailable: ' + body.turnUnavailable);
      if (ui.policy.value === 'relay') notice('Relay only was asked for, but the server offers no TURN: ' + body.turnUnavailable, 'bad');
    }
    return body.iceServers || [];
  }

  async function createPeer() {
    const iceServers = await fetchIceServers();
    const config = rtcConfig(iceServers);
    try {
      pc = new RTCPeerConnection(config);
    } catch (err) {
      throw new Error('RTCPeerConnection(' + JSON.stringify({ bundlePolicy: config.bundlePolicy, rtcpMuxPolicy: config.rtcpMuxPolicy }) + '): ' + err.message);
    }
    const mine = pc;
    if (localStream) {
      for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
    } else {
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    pc.onicecandidate = (e) => {
      if (mine !== pc || !e.candidate) return;
      pub.candidatesSent++;
      // The tutorial's candidate message.
      signal({ type: 'candidate', label: e.candidate.sdpMLineIndex, id: e.candidate.sdpMid, candidate: e.candidate.candidate });
    };
    pc.ontrack = (e) => {
      if (mine !== pc) return;
      const stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      if (ui.remote.srcObject !== stream) ui.remote.srcObject = stream;
    };
    pc.oniceconnectionstatechange = () => {
      if (mine !== pc) return;
      const s = pc.iceConnectionState;
      setText(ui.st.ice, s, stateClass(s));
      badge(ui.badgeIce, 'ICE: ' + s, s === 'connected' || s === 'completed' ? 'good' : s === 'failed' ? 'bad' : 'warn');
      log('info', 'ICE ' + s);
      if (s === 'failed') notice('ICE failed: no path between the two sides. Try ICE restart, or check that the TURN server is reachable.', 'bad');
    };
    pc.onconnectionstatechange = () => {
      if (mine !== pc) return;
      const s = pc.connectionState;
      setText(ui.st.conn, s, stateClass(s));
      if (s === 'connected') {
        setPhase('connected');
        overlay(null);
        notice(null);
      } else if (s === 'failed' || s === 'disconnected') {
        if (pub.phase === 'connected') setPhase('calling');
      }
    };
    pc.onsignalingstatechange = () => { if (mine === pc) updateSignalingStatus(); };
    updateSignalingStatus();
    setText(ui.st.ice, pc.iceConnectionState);
    setText(ui.st.conn, pc.connectionState);
    setPhase('calling');
    overlay('Connecting…', 'Negotiating with the other side through ringturn.');
    startStats();
  }

  async function makeOffer(iceRestart) {
    makingOffer = true;
    try {
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : {});
      await pc.setLocalDescription(offer);
      pub.offersSent++;
      signal({ type: 'offer', sdp: pc.localDescription.sdp });
    } finally {
      makingOffer = false;
    }
  }

  async function startCall() {
    if (pc) closePeer();
    await createPeer();
    await makeOffer(false);
  }

  async function restartIce() {
    if (!pc) return;
    try {
      const cfg = pc.getConfiguration();
      if (cfg.iceTransportPolicy !== ui.policy.value) {
        cfg.iceTransportPolicy = ui.policy.value;
        pc.setConfiguration(cfg);
        log('info', 'ICE transport policy now ' + ui.policy.value);
      }
      log('info', 'ICE restart');
      await makeOffer(true);
    } catch (err) {
      fail('ICE restart', err);
    }
  }

  // ---- stats ---------------------------------------------------------------

  function startStats() {
    stopStats();
    lastBytes = null;
    statsTimer = setInterval(() => { collectStats().catch(() => {}); }, 1000);
  }

  function stopStats() {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = null;
  }

  async function collectStats() {
    if (!pc) return;
    const report = await pc.getStats();
    let pair = null;
    let sent = 0;
    let received = 0;
    let video = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
      if (s.type === 'outbound-rtp') sent += s.bytesSent || 0;
      if (s.type === 'inbound-rtp') {
        received += s.bytesReceived || 0;
        if (s.kind === 'video') video = s;
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    const st = { iceConnectionState: pc.iceConnectionState, connectionState: pc.connectionState, signalingState: pc.signalingState };
    if (pair) {
      const local = report.get(pair.localCandidateId) || {};
      const remote = report.get(pair.remoteCandidateId) || {};
      Object.assign(st, {
        pairState: pair.state,
        localType: local.candidateType, remoteType: remote.candidateType,
        localProtocol: local.protocol, relayProtocol: local.relayProtocol,
        localAddress: local.address, localPort: local.port,
        remoteAddress: remote.address, remotePort: remote.port,
        rttMs: pair.currentRoundTripTime !== undefined ? Math.round(pair.currentRoundTripTime * 1000) : null,
      });
      setText(ui.st.pair, local.candidateType + ' ⇄ ' + remote.candidateType + ' · ' + (local.relayProtocol || local.protocol || ''), local.candidateType === 'relay' ? 'good-text' : '');
      setText(ui.st.relay, local.candidateType === 'relay' ? local.address + ':' + local.port : '–');
      ui.chip.textContent = local.candidateType + ' ⇄ ' + remote.candidateType + (st.rttMs !== null ? ' · ' + st.rttMs + ' ms' : '');
      ui.chip.hidden = false;
      setText(ui.st.rtt, st.rttMs !== null ? st.rttMs + ' ms' : '–');
    }
    const t = performance.now();
    if (lastBytes) {
      const dt = (t - lastBytes.t) / 1000;
      if (dt > 0) {
        st.outKbps = Math.round(((sent - lastBytes.sent) * 8) / dt / 1000);
        st.inKbps = Math.round(((received - lastBytes.received) * 8) / dt / 1000);
        setText(ui.st.bitrate, st.outKbps + ' / ' + st.inKbps + ' kbit/s');
      }
    }
    lastBytes = { t: t, sent: sent, received: received };
    if (video) {
      st.framesDecoded = video.framesDecoded || 0;
      st.frameWidth = video.frameWidth;
      st.frameHeight = video.frameHeight;
      st.framesPerSecond = video.framesPerSecond;
      setText(ui.st.video, (video.frameWidth ? video.frameWidth + '×' + video.frameHeight + ' · ' : '') + (video.framesPerSecond ? Math.round(video.framesPerSecond) + ' fps · ' : '') + st.framesDecoded + ' frames');
    }
    pub.stats = st;
  }

  // ---- joining and leaving -------------------------------------------------

  function closePeer() {
    stopStats();
    if (pc) {
      const old = pc;
      pc = null;
      try { old.close(); } catch (err) { /* already closed */ }
    }
    pendingCandidates = [];
    makingOffer = false;
    ui.remote.srcObject = null;
    ui.chip.hidden = true;
    setText(ui.st.pair, '–');
    setText(ui.st.relay, '–');
    setText(ui.st.rtt, '–');
    setText(ui.st.bitrate, '–');
    setText(ui.st.video, '–');
    setText(ui.st.ice, '–');
    setText(ui.st.conn, '–');
    badge(ui.badgeIce, 'ICE: new', '');
    updateSignalingStatus();
  }

  function teardown(keepOverlay) {
    closePeer();
    if (localStream) {
      for (const t of localStream.getTracks()) t.stop();
      localStream = null;
    }
    ui.local.srcObject = null;
    ui.local.classList.remove('live');
    if (!keepOverlay) return;
    overlay('Join a room to start a call', 'Open this page on another device or tab and join the same room.');
  }

  function closeSignaling() {
    if (ws) {
      const old = ws;
      ws = null;
      try { old.close(1000); } catch (err) { /* gone */ }
    }
    updateSignalingStatus();
  }

  function fail(what, err) {
    const message = what + ': ' + (err && err.message ? err.message : String(err));
    pub.errors.push({ code: 'page', message: message });
    log('err', message);
    notice(message, 'bad');
  }

  async function join(room) {
    notice(null);
    pub.room = room;
    pub.peer = null;
    setText(ui.st.room, room);
    setPhase('joining');
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    if (ui.policy.value === 'relay') url.searchParams.set('policy', 'relay'); else url.searchParams.delete('policy');
    history.replaceState(null, '', url);
    overlay('Starting…', 'Asking for the camera and microphone.');
    try {
      localStream = await getMedia();
      if (localStream) {
        ui.local.srcObject = localStream;
        ui.local.classList.add('live');
      }
      await openSignaling();
      send({ type: 'join', room: room });
    } catch (err) {
      setPhase('error');
      teardown(true);
      closeSignaling();
      fail('join', err);
    }
  }

  function hangup() {
    log('info', 'hanging up');
    teardown(true);
    if (!send({ type: 'leave', room: pub.room })) {
      closeSignaling();
      setPhase('left');
    }
  }

  // ---- wiring --------------------------------------------------------------

  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = ui.room.value.trim();
    if (!room) { notice('Enter a room name.', 'bad'); return; }
    join(room);
  });
  ui.hangup.addEventListener('click', hangup);
  ui.restart.addEventListener('click', restartIce);
  ui.copy.addEventListener('click', async () => {
    const url = new URL(location.href);
    const room = ui.room.value.trim();
    if (room) url.searchParams.set('room', room);
    try {
      await navigator.clipboard.writeText(url.toString());
      notice('Link copied: ' + url.toString(), 'good');
    } catch (err) {
      notice('Share this link: ' + url.toString(), '');
    }
  });
  window.addEventListener('pagehide', () => {
    if (ws && ws.readyState === WebSocket.OPEN && pub.room) send({ type: 'leave', room: pub.room });
  });

  const params = new URLSearchParams(location.search);
  if (params.get('room')) ui.room.value = params.get('room');
  if (params.get('policy') === 'relay') ui.policy.value = 'relay';
  if (!params.get('room')) {
    ui.room.value = Math.random().toString(36).slice(2, 8);
  }
  setPhase('idle');
  updateSignalingStatus();
})();
