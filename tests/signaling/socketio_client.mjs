#!/usr/bin/env node
// Drives ringturn's Socket.IO transport with a real socket.io-client, the way
// the WebRTC tutorial's page does: every protocol message, every bad input,
// the limits, and a room shared with a plain WebSocket (/ws) client.
//
//   node tests/signaling/socketio_client.mjs --client v4|v3|v2 \
//       --url http://127.0.0.1:PORT --full-url http://127.0.0.1:PORT2 \
//       [--transports websocket|polling|default] --max-message-bytes 4096 \
//       --rooms-per-connection 3 --max-rooms 6
//
// The server at --url has those limits (rooms of 2); the one at --full-url
// admits 2 connections. Prints `RESULT {"ok":true,"checks":[...]}` and exits
// 0, or prints the failed check and exits 1.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import process from 'node:process';

const require = createRequire(import.meta.url);

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const CLIENT = arg('client', 'v4');
const URL_ = arg('url');
const FULL_URL = arg('full-url');
// With two signaling nodes sharing rooms (issue 14): B, C and the /ws client
// connect here, A and the others to --url.
const PEER_URL = arg('peer-url', URL_);
// Which groups of checks run (comma-separated; default all).
const SUITES = arg('suites', 'protocol,bad-input,malformed,shared-with-ws,server-full').split(',');
const TRANSPORTS = arg('transports', 'default');
const MAX_BYTES = Number(arg('max-message-bytes', '4096'));
const ROOMS_PER_CONN = Number(arg('rooms-per-connection', '3'));
const MAX_ROOMS = Number(arg('max-rooms', '6'));
const TIMEOUT = 5000;

const pkg = { v4: 'socket.io-client', v3: 'socket.io-client-v3', v2: 'socket.io-client-v2' }[CLIENT];
if (!pkg) throw new Error(`--client must be v4, v3 or v2, not ${CLIENT}`);
const io = require(pkg);
const WebSocket = require('ws');
const version = require(pkg + '/package.json').version;

const checks = [];
function ok(name) {
  checks.push(name);
}

/// A client that records every event it receives, so tests can wait for
/// one and check what else arrived.
class Peer {
  constructor(name, url = URL_) {
    this.name = name;
    const opts = { forceNew: true, reconnection: false, timeout: TIMEOUT };
    if (TRANSPORTS !== 'default') opts.transports = [TRANSPORTS];
    this.socket = io(url, opts);
    this.events = [];
    this.waiters = [];
    const record = (event) => (...args) => {
      this.events.push({ event, args });
      this.wake();
    };
    for (const e of ['joined', 'otherJoin', 'otherjoin', 'full', 'leaved', 'bye', 'message', 'error', 'disconnect']) {
      this.socket.on(e, record(e));
    }
  }

  wake() {
    for (const w of this.waiters.slice()) w();
  }

  async connected() {
    if (this.socket.connected) return;
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no connect within ${TIMEOUT} ms`)), TIMEOUT);
      this.socket.once('connect', () => { clearTimeout(t); resolve(); });
      this.socket.once('connect_error', (e) => { clearTimeout(t); reject(new Error(`${this.name}: connect_error ${e.message}`)); });
    });
  }

  get id() {
    return this.socket.id;
  }

  emit(...args) {
    this.socket.emit(...args);
  }

  /// Takes the first recorded `event` (waiting for it); fails if none within the timeout.
  async take(event) {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const i = this.events.findIndex((e) => e.event === event);
      if (i >= 0) return this.events.splice(i, 1)[0].args;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.name}: no ${event} within ${TIMEOUT} ms; got ${JSON.stringify(this.events)}`);
      }
      await new Promise((resolve) => {
        const w = () => { clearTimeout(t); this.waiters.splice(this.waiters.indexOf(w), 1); resolve(); };
        const t = setTimeout(w, left);
        this.waiters.push(w);
      });
    }
  }

  async error(code) {
    const [body] = await this.take('error');
    assert.equal(typeof body, 'object', `${this.name}: error carries one object`);
    assert.equal(body.code, code, `${this.name}: ${JSON.stringify(body)}`);
    assert.ok(body.message && body.message.length > 0);
    return body;
  }

  /// Nothing (but the listed events) arrived so far, and nothing arrives within `ms`.
  async quiet(ms = 200) {
    await new Promise((r) => setTimeout(r, ms));
    assert.deepEqual(this.events, [], `${this.name} heard ${JSON.stringify(this.events)}`);
  }

  close() {
    this.socket.close();
  }
}

async function protocol() {
  const a = new Peer('A');
  const b = new Peer('B', PEER_URL);
  await Promise.all([a.connected(), b.connected()]);

  a.emit('join', 'r1');
  const [room, idA] = await a.take('joined');
  assert.equal(room, 'r1');
  assert.ok(typeof idA === 'string' && idA.length > 0);
  assert.equal(idA, a.id, 'joined carries the socket id');
  ok('join -> joined(room, id)');

  b.emit('join', 'r1');
  const [, idB] = await b.take('joined');
  assert.notEqual(idB, idA);
  assert.deepEqual(await a.take('otherJoin'), ['r1', idB]);
  assert.deepEqual(await a.take('otherjoin'), ['r1', idB], "the tutorial server's spelling too");
  ok('second join -> joined to it, otherJoin(room, id) + otherjoin to the first');

  const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
  a.emit('message', 'r1', offer);
  assert.deepEqual(await b.take('message'), ['r1', offer]);
  const answer = { type: 'answer', sdp: 'v=0\r\n' };
  b.emit('message', 'r1', answer);
  assert.deepEqual(await a.take('message'), ['r1', answer]);
  const cand = { type: 'candidate', label: 0, id: '0', candidate: 'candidate:1 1 udp 1 127.0.0.1 49152 typ relay' };
  a.emit('message', 'r1', cand);
  assert.deepEqual(await b.take('message'), ['r1', cand]);
  // Any JSON is data: strings, numbers, arrays, unicode.
  for (const data of ['text', 42, [1, { x: 'é😀' }], true]) {
    b.emit('message', 'r1', data);
    assert.deepEqual(await a.take('message'), ['r1', data]);
  }
  await a.quiet(100);
  await b.quiet(0);
  ok('message(room, data) -> message(room, data) to the other member only');

  // Events from one socket are handled in order: join then message at once.
  const c = new Peer('C', PEER_URL);
  await c.connected();
  c.emit('join', 'r1');
  const [fullRoom, idC] = await c.take('full');
  assert.equal(fullRoom, 'r1');
  assert.equal(idC, c.id);
  await a.quiet(100);
  await b.quiet(0);
  ok('third join -> full(room, id), the members hear nothing');

  a.emit('leave', 'r1');
  assert.deepEqual(await a.take('leaved'), ['r1', idA]);
  assert.deepEqual(await b.take('bye'), ['r1', idA]);
  ok('leave -> leaved(room, id) to it, bye(room, id) to the other');

  c.emit('join', 'r1');
  c.emit('message', 'r1', { type: 'offer', sdp: 'right after join' });
  const [, idC2] = await c.take('joined');
  assert.equal(idC2, idC);
  assert.deepEqual(await b.take('otherJoin'), ['r1', idC]);
  await b.take('otherjoin');
  assert.deepEqual(await b.take('message'), ['r1', { type: 'offer', sdp: 'right after join' }]);
  ok('events of one socket are handled in order');

  c.close();
  assert.deepEqual(await b.take('bye'), ['r1', idC]);
  ok('a dropped connection counts as leave: the other gets bye');
  a.close();
  b.close();
}

async function badInput() {
  const a = new Peer('A');
  const b = new Peer('B');
  await Promise.all([a.connected(), b.connected()]);

  a.emit('dance', 'r');
  const unknown = await a.error('unknown-type');
  assert.match(unknown.message, /dance/);
  ok('unknown event -> error unknown-type');

  for (const bad of [[42], [], [{ room: 'x' }], [null]]) {
    a.emit('join', ...bad);
    await a.error('invalid-message');
  }
  a.emit('leave', 7);
  await a.error('invalid-message');
  a.emit('message', 'r');
  await a.error('invalid-message');
  a.emit('message', 'r', null);
  await a.error('invalid-message');
  a.emit('message', 5, {});
  await a.error('invalid-message');
  ok('wrong arguments -> error invalid-message');

  a.emit('message', 'nowhere', { type: 'offer' });
  assert.equal((await a.error('not-in-room')).room, 'nowhere');
  a.emit('leave', 'nowhere');
  await a.error('not-in-room');
  ok('message/leave outside a room -> error not-in-room');

  a.emit('join', '');
  await a.error('invalid-room');
  a.emit('join', 'x'.repeat(300));
  await a.error('invalid-room');
  ok('empty or long room name -> error invalid-room');

  a.emit('join', 'r');
  await a.take('joined');
  a.emit('join', 'r');
  assert.equal((await a.error('already-in-room')).room, 'r');
  ok('join twice -> error already-in-room');

  b.emit('join', 'r');
  await b.take('joined');
  await a.take('otherJoin');
  await a.take('otherjoin');
  a.emit('message', 'r', { blob: 'x'.repeat(MAX_BYTES + 10) });
  const big = await a.error('too-large');
  assert.match(big.message, new RegExp(String(MAX_BYTES)));
  await b.quiet(200);
  ok('oversized message -> error too-large, not forwarded');

  const extra = [];
  for (let i = 2; i <= ROOMS_PER_CONN; i++) {
    a.emit('join', 'r' + i);
    await a.take('joined');
    extra.push('r' + i);
  }
  a.emit('join', 'one-too-many');
  await a.error('too-many-rooms');
  ok('too many rooms for one connection -> error too-many-rooms');

  // Fill the server's rooms (r and the extras exist), then one more is refused.
  const filler = [];
  let made = 1 + extra.length;
  while (made < MAX_ROOMS) {
    const p = new Peer('F' + made);
    await p.connected();
    p.emit('join', 'fill-' + made);
    await p.take('joined');
    filler.push(p);
    made++;
  }
  const late = new Peer('late');
  await late.connected();
  late.emit('join', 'brand-new');
  await late.error('rooms-exhausted');
  late.emit('join', extra[0]);
  await late.take('joined');
  ok('server room limit -> error rooms-exhausted; existing rooms stay joinable');

  // Still usable after all of it.
  a.emit('message', 'r', { type: 'offer', sdp: 'still here' });
  assert.deepEqual(await b.take('message'), ['r', { type: 'offer', sdp: 'still here' }]);
  ok('the connection stays usable after errors');
  for (const p of [a, b, late, ...filler]) p.close();
}

/// Malformed Socket.IO packets (the transport's "malformed JSON"): the
/// Socket.IO protocol has no error event for a packet it cannot parse; the
/// server closes that connection, and everyone else is unaffected.
async function malformedPackets() {
  const other = new Peer('other');
  await other.connected();
  other.emit('join', 'raw');
  await other.take('joined');
  // socket.io-client 2.x speaks Engine.IO 3, where the server connects the
  // default namespace by itself; 3.x and 4.x speak Engine.IO 4.
  const eio = CLIENT === 'v2' ? 3 : 4;
  const wsUrl = URL_.replace(/^http/, 'ws') + `/socket.io/?EIO=${eio}&transport=websocket`;
  // Control: the same raw client with a well-formed packet gets its answer.
  const reply = await new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl);
    const t = setTimeout(() => { ws.terminate(); reject(new Error('raw client: no joined')); }, TIMEOUT);
    ws.on('message', (m) => {
      const s = m.toString();
      if (s.startsWith('0{') && eio === 4) ws.send('40');
      else if (s.startsWith('40')) ws.send('42["join","raw-control"]');
      else if (s.startsWith('42')) { clearTimeout(t); ws.close(); resolve(JSON.parse(s.slice(2))); }
    });
    ws.on('error', () => {});
  });
  assert.equal(reply[0], 'joined');
  assert.equal(reply[1], 'raw-control');
  for (const garbage of ['42["join","raw"', '42{"not":"an array"}', '4Z', 'not a packet']) {
    const closed = await new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl);
      const t = setTimeout(() => { ws.terminate(); reject(new Error(`no close after ${JSON.stringify(garbage)}`)); }, TIMEOUT);
      let sent = false;
      ws.on('message', (m) => {
        const s = m.toString();
        if (s.startsWith('0{') && eio === 4) ws.send('40');
        else if (s.startsWith('40') && !sent) { sent = true; ws.send(garbage); }
      });
      ws.on('close', (code) => { clearTimeout(t); resolve(code); });
      ws.on('error', () => {});
    });
    assert.ok(typeof closed === 'number');
  }
  other.emit('message', 'raw', 'ping');
  await other.quiet(100);
  other.emit('leave', 'raw');
  await other.take('leaved');
  ok('malformed Socket.IO packets close that connection only');
  other.close();
}

async function sharedWithWebSocket() {
  const wsUrl = PEER_URL.replace(/^http/, 'ws') + '/ws';
  const ws = new WebSocket(wsUrl);
  const inbox = [];
  let wake = () => {};
  ws.on('message', (m) => { inbox.push(JSON.parse(m.toString())); wake(); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const next = async (type) => {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return inbox.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`ws: no ${type}; got ${JSON.stringify(inbox)}`);
      await new Promise((r) => { wake = r; setTimeout(r, 50); });
    }
  };
  ws.send(JSON.stringify({ type: 'join', room: 'mixed' }));
  const joined = await next('joined');
  const p = new Peer('P');
  await p.connected();
  p.emit('join', 'mixed');
  await p.take('joined');
  const other = await next('otherJoin');
  assert.equal(other.id, p.id);
  p.emit('message', 'mixed', { type: 'offer', sdp: 'from socket.io' });
  assert.deepEqual((await next('message')).data, { type: 'offer', sdp: 'from socket.io' });
  ws.send(JSON.stringify({ type: 'message', room: 'mixed', data: { type: 'answer', sdp: 'from ws' } }));
  assert.deepEqual(await p.take('message'), ['mixed', { type: 'answer', sdp: 'from ws' }]);
  ws.close();
  assert.deepEqual(await p.take('bye'), ['mixed', joined.id]);
  ok('a Socket.IO client and a /ws client share a room');
  p.close();
}

async function serverFull() {
  if (!FULL_URL) return;
  const a = new Peer('full-a', FULL_URL);
  const b = new Peer('full-b', FULL_URL);
  await Promise.all([a.connected(), b.connected()]);
  const c = new Peer('full-c', FULL_URL);
  const [body] = await c.take('error');
  assert.equal(body.code, 'server-full', JSON.stringify(body));
  await c.take('disconnect');
  a.emit('join', 'r');
  await a.take('joined');
  ok('connection limit -> error server-full and disconnect');
  for (const p of [a, b, c]) p.close();
}

async function main() {
  assert.ok(URL_, '--url is required');
  if (SUITES.includes('protocol')) await protocol();
  if (SUITES.includes('bad-input')) await badInput();
  if (SUITES.includes('malformed')) await malformedPackets();
  if (SUITES.includes('shared-with-ws')) await sharedWithWebSocket();
  if (SUITES.includes('server-full')) await serverFull();
}

const hard = setTimeout(() => {
  process.stdout.write('RESULT ' + JSON.stringify({ ok: false, client: CLIENT, version, checks, error: 'timed out' }) + '\n');
  process.exit(1);
}, 60000);
main().then(() => {
  clearTimeout(hard);
  process.stdout.write('RESULT ' + JSON.stringify({ ok: true, client: CLIENT, version, transports: TRANSPORTS, checks }) + '\n');
  process.exit(0);
}, (e) => {
  clearTimeout(hard);
  process.stdout.write('RESULT ' + JSON.stringify({ ok: false, client: CLIENT, version, checks, error: e.stack || String(e) }) + '\n');
  process.exit(1);
});
