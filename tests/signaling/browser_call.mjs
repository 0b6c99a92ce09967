#!/usr/bin/env node
// A real two-browser call through ringturn, driven with playwright-core on
// Debian's Chromium. Meant to run inside a fresh network namespace that holds
// only loopback (the Rust test starts it with `unshare --net`):
//
//   unshare --net node tests/signaling/browser_call.mjs --ringturn target/debug/ringturn \
//       --chromium /usr/bin/chromium --artifacts target/artifacts
//
// It starts ringturn with no arguments at all (the embedded defaults: TURN on
// 127.0.0.1:3478, the call page on http://127.0.0.1:8080/), then:
//   1. pages A (desktop, 1280x800) and B (phone, 390x844) open the page, pick
//      "relay only", join one room; both must reach a relay/relay selected
//      pair through ringturn's relay ports with framesDecoded growing;
//      screenshots of both are saved;
//   2. A presses "ICE restart": a second offer/answer, media keeps flowing;
//   3. page C joins the same room and gets `full`;
//   4. A hangs up: A gets `leaved`, B gets `bye`;
//   5. ringturn gets SIGTERM with B still connected and must exit within a
//      second.
// With --two-nodes (issue 14) it instead starts Redis and two ringturn nodes
// sharing rooms on it (TURN and the page on 127.0.0.1 and on 127.0.0.2): page
// A on node 1 and page B on node 2 join one room and call relay-only, each
// through its own node's TURN; page C on node 2 gets `full`; node 2 is
// SIGKILLed and A gets `bye`; page D on node 1 then joins A's room and calls.
// It prints one line `RESULT {json}` and exits 0 when every step passed,
// 1 otherwise. Everything it started is killed on every path.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const START = Date.now();
const PAGE = 'http://127.0.0.1:8080/';
const RELAY_MIN = 49152;
const RELAY_MAX = 65535;

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const opts = {
  ringturn: arg('ringturn'),
  chromium: arg('chromium', '/usr/bin/chromium'),
  artifacts: arg('artifacts', path.join(HERE, '..', '..', 'target', 'artifacts')),
  timeout: Number(arg('timeout', '150')) * 1000,
  workdir: arg('workdir', fs.mkdtempSync(path.join(os.tmpdir(), 'ringturn-call-'))),
  twoNodes: process.argv.includes('--two-nodes'),
};

const BROWSER_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-dev-shm-usage',
  '--disable-crash-reporter', '--disable-breakpad',
];

function log(msg) {
  process.stderr.write(`[driver ${((Date.now() - START) / 1000).toFixed(2)}s] ${msg}\n`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(file, lines = 60) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch (e) {
    return `<cannot read ${file}: ${e.message}>`;
  }
}

/// Polls `fn` until it returns a truthy value or `ms` pass; throws `what` then.
async function until(what, ms, fn, every = 200) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(every);
  }
}

function netnsId(pid) {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

/// SIGKILLs whatever else still runs in this private network namespace (only
/// what this driver started can be there, e.g. Chromium helpers that setsid).
function sweepNamespace() {
  const mine = netnsId('self');
  if (!mine) return;
  const keep = new Set();
  let pid = process.pid;
  while (pid > 0 && !keep.has(pid)) {
    keep.add(pid);
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  for (let round = 0; round < 20; round++) {
    const left = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && !keep.has(Number(n)) && netnsId(n) === mine);
    if (left.length === 0) return;
    for (const p of left) {
      try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
    }
    execFileSync('sleep', ['0.05']);
  }
}

async function main(result) {
  if (!opts.ringturn) throw new Error('--ringturn PATH is required');
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const ifaces = Object.keys(os.networkInterfaces()).sort();
  if (ifaces.join(',') !== 'lo') {
    throw new Error(`refusing to run outside a private network namespace (interfaces: ${ifaces}); start me with unshare --net`);
  }
  fs.mkdirSync(opts.artifacts, { recursive: true });
  fs.mkdirSync(opts.workdir, { recursive: true });
  let pw;
  try {
    pw = await import(path.join(HERE, 'node_modules', 'playwright-core', 'index.mjs'));
  } catch (e) {
    throw new Error(`playwright-core is not installed: run \`npm ci --prefix tests/signaling\` (${e.message})`);
  }

  if (opts.twoNodes) return twoNodes(result, pw);

  // --- ringturn on its embedded defaults ------------------------------------
  const turnLog = path.join(opts.workdir, 'ringturn.log');
  const out = fs.openSync(turnLog, 'w');
  const turn = spawn(opts.ringturn, [], { stdio: ['ignore', out, out], env: { ...process.env, RUST_LOG: 'ringturn=debug' } });
  result.cleanup.push(() => { if (turn.exitCode === null && turn.signalCode === null) turn.kill('SIGKILL'); });
  let turnExit = null;
  const turnExited = new Promise((resolve) => turn.on('exit', (code, signal) => {
    turnExit = { code, signal, at: Date.now() };
    resolve(turnExit);
  }));
  const ice = await until('ringturn to serve /api/ice-servers', 10000, async () => {
    if (turnExit) throw new Error(`ringturn exited: ${JSON.stringify(turnExit)}\n${tail(turnLog)}`);
    const res = await fetch(PAGE + 'api/ice-servers');
    return res.ok ? res.json() : null;
  }, 50);
  result.iceServers = ice;
  const turnServer = (ice.iceServers || []).find((s) => s.urls.some((u) => u.startsWith('turn:')));
  if (!turnServer || !turnServer.username || !turnServer.credential) {
    throw new Error(`no turn: URL with credentials in /api/ice-servers: ${JSON.stringify(ice)}`);
  }
  log(`ringturn serves the page; ICE servers ${JSON.stringify(ice.iceServers.map((s) => s.urls))}`);

  // --- the browser -------------------------------------------------------------
  const browser = await pw.chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: BROWSER_ARGS,
  });
  result.cleanup.push(() => browser.close().catch(() => {}));
  result.browser = browser.version();
  const context = async (viewport, mobile) => {
    const ctx = await browser.newContext({
      viewport,
      deviceScaleFactor: mobile ? 2 : 1,
      isMobile: mobile,
      hasTouch: mobile,
    });
    await ctx.grantPermissions(['camera', 'microphone'], { origin: PAGE.slice(0, -1) });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => result.pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
    return page;
  };
  const room = 'call-' + Math.random().toString(36).slice(2, 8);
  const state = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.ringturn)));
  const joinRoom = async (page) => {
    await page.goto(PAGE, { waitUntil: 'load' });
    await page.fill('#room', room);
    await page.selectOption('#ice-policy', 'relay');
    await page.click('#join');
  };
  const events = (st, type) => st.events.filter((e) => e.dir === 'in' && e.type === type);

  const a = await context({ width: 1280, height: 800 }, false);
  const b = await context({ width: 390, height: 844 }, true);

  // 1. A joins and waits; B joins; A calls.
  await joinRoom(a);
  await until('A: joined (waiting)', 15000, async () => (await state(a)).phase === 'waiting');
  await joinRoom(b);
  const relayed = (st) => st.stats && st.stats.localType === 'relay' && st.stats.remoteType === 'relay'
    && st.stats.pairState === 'succeeded' && st.stats.framesDecoded > 0;
  const [sa, sb] = await until('both pages: relay/relay pair and decoded frames', 45000, async () => {
    const x = await state(a);
    const y = await state(b);
    return relayed(x) && relayed(y) ? [x, y] : null;
  }, 250);
  log(`connected: A ${sa.stats.localAddress}:${sa.stats.localPort} <-> B ${sb.stats.localAddress}:${sb.stats.localPort}`);
  for (const [name, st] of [['A', sa], ['B', sb]]) {
    for (const [k, port] of [['local', st.stats.localPort], ['remote', st.stats.remotePort]]) {
      if (!(port >= RELAY_MIN && port <= RELAY_MAX)) throw new Error(`${name}: ${k} port ${port} is not one of ringturn's relay ports`);
    }
    if (st.stats.localAddress !== '127.0.0.1' || st.stats.remoteAddress !== '127.0.0.1') {
      throw new Error(`${name}: the pair is not on ringturn's relay address: ${JSON.stringify(st.stats)}`);
    }
    // The page offers TURN over UDP and over TCP (both ringturn's); ICE
    // nominates whichever relay pair checks first, and on a busy 2-core
    // machine that is sometimes the TCP-allocated one.
    if (!['udp', 'tcp'].includes(st.stats.relayProtocol)) throw new Error(`${name}: relay not allocated over ringturn's UDP or TCP: ${JSON.stringify(st.stats)}`);
  }
  if (sa.stats.localPort !== sb.stats.remotePort || sb.stats.localPort !== sa.stats.remotePort) {
    throw new Error('the two selected pairs do not mirror each other');
  }
  const f1 = [sa.stats.framesDecoded, sb.stats.framesDecoded];
  await sleep(2000);
  const [sa2, sb2] = [await state(a), await state(b)];
  const f2 = [sa2.stats.framesDecoded, sb2.stats.framesDecoded];
  if (!(f2[0] > f1[0] && f2[1] > f1[1])) throw new Error(`framesDecoded did not grow: ${f1} -> ${f2}`);
  result.call = {
    a: sa2.stats,
    b: sb2.stats,
    framesBefore: f1,
    framesAfter: f2,
    aOtherJoin: events(sa2, 'otherJoin').length,
    bJoined: events(sb2, 'joined').length,
    offersSentByA: sa2.offersSent,
    candidatesSent: [sa2.candidatesSent, sb2.candidatesSent],
  };
  // Let the status panel show a full second of bitrate before the pictures.
  await sleep(1200);
  const shot = path.join(opts.artifacts, 'call.png');
  const shotMobile = path.join(opts.artifacts, 'call-mobile.png');
  await a.screenshot({ path: shot, fullPage: true });
  // The phone as a person holds it (390x844), and the whole scrolled page.
  await b.screenshot({ path: shotMobile });
  const shotMobileFull = path.join(opts.artifacts, 'call-mobile-full.png');
  await b.screenshot({ path: shotMobileFull, fullPage: true });
  result.screenshots = [shot, shotMobile, shotMobileFull];
  log(`screenshots: ${shot}, ${shotMobile}`);

  // 2. ICE restart on a live call.
  await a.click('#restart-ice');
  const [ra, rb] = await until('ICE restart renegotiated (second offer/answer) and still relaying', 30000, async () => {
    const x = await state(a);
    const y = await state(b);
    return x.offersSent >= 2 && x.answersReceived >= 2 && y.offersReceived >= 2
      && x.stats.connectionState === 'connected' && relayed(x) && relayed(y)
      && x.stats.framesDecoded > f2[0] && y.stats.framesDecoded > f2[1] ? [x, y] : null;
  }, 250);
  await sleep(1500);
  const [ra2, rb2] = [await state(a), await state(b)];
  if (!(ra2.stats.framesDecoded > ra.stats.framesDecoded && rb2.stats.framesDecoded > rb.stats.framesDecoded)) {
    throw new Error('frames stopped after the ICE restart');
  }
  result.iceRestart = { offersSentByA: ra2.offersSent, offersReceivedByB: rb2.offersReceived, a: ra2.stats, b: rb2.stats };

  // 3. A third page gets `full` and is not added.
  const c = await context({ width: 1280, height: 800 }, false);
  await joinRoom(c);
  const sc = await until('C: full', 15000, async () => {
    const st = await state(c);
    return st.phase === 'full' ? st : null;
  });
  const fullEvent = events(sc, 'full');
  await sleep(300);
  const [fa, fb] = [await state(a), await state(b)];
  result.full = {
    cEvents: sc.events.filter((e) => e.dir === 'in').map((e) => e.type),
    aOtherJoin: events(fa, 'otherJoin').length,
    bOtherJoin: events(fb, 'otherJoin').length,
    stillConnected: fa.stats.connectionState === 'connected' && fb.stats.connectionState === 'connected',
  };
  if (fullEvent.length !== 1) throw new Error(`C saw ${fullEvent.length} full events`);
  if (result.full.aOtherJoin !== 1 || result.full.bOtherJoin !== 0) throw new Error(`the members heard about C: ${JSON.stringify(result.full)}`);
  await c.screenshot({ path: path.join(opts.artifacts, 'call-full.png') });

  // 4. A hangs up: A gets `leaved`, B gets `bye`.
  await a.click('#hangup');
  const [ha, hb] = await until('A: leaved, B: bye', 15000, async () => {
    const x = await state(a);
    const y = await state(b);
    return events(x, 'leaved').length === 1 && events(y, 'bye').length === 1 ? [x, y] : null;
  });
  result.hangup = {
    aPhase: ha.phase,
    bPhase: hb.phase,
    bByeId: hb.peer,
    aId: ha.id,
  };
  if (hb.phase !== 'waiting') throw new Error(`B after bye is ${hb.phase}, expected waiting`);
  await b.screenshot({ path: path.join(opts.artifacts, 'call-bye-mobile.png'), fullPage: true });

  // 5. SIGTERM with B still connected to signaling: ringturn exits within a second.
  const sent = Date.now();
  turn.kill('SIGTERM');
  const exit = await Promise.race([turnExited, sleep(3000).then(() => null)]);
  result.stop = exit ? { code: exit.code, signal: exit.signal, ms: exit.at - sent } : { ms: null };
  if (!exit) throw new Error('ringturn did not exit within 3 s of SIGTERM');
  if (exit.code !== 0) throw new Error(`ringturn exited with ${JSON.stringify(exit)}\n${tail(turnLog)}`);
  const bAfter = await until('B: signaling closed by the server', 5000, async () => {
    const st = await b.evaluate(() => document.getElementById('badge-signaling').textContent);
    return st.includes('off') || st.includes('closed') ? st : null;
  });
  result.stop.bBadge = bAfter;
  result.ok = true;
}

/// Issue 14: two nodes sharing rooms on Redis, one page on each.
async function twoNodes(result, pw) {
  const REDIS_PORT = 6390;
  const redisDir = path.join(opts.workdir, 'redis');
  fs.mkdirSync(redisDir, { recursive: true });
  const redis = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: 'ignore' });
  result.cleanup.push(() => { if (redis.exitCode === null) redis.kill('SIGKILL'); });
  await until('redis-server to answer', 10000, async () => {
    try {
      return execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'ping']).toString().includes('PONG');
    } catch {
      return false;
    }
  }, 50);
  const start = (host, name) => {
    const logFile = path.join(opts.workdir, `node-${name}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(opts.ringturn, [
      `--listening-ip=${host}`, '--listening-port=3478', `--relay-ip=${host}`,
      '--min-port=49152', '--max-port=49999', '--realm=ringturn.test',
      '--use-auth-secret', '--static-auth-secret=two-nodes-secret', '--allow-loopback-peers',
      `--signaling-listening-ip=${host}`, '--signaling-listening-port=8080',
      `--signaling-redis=redis://127.0.0.1:${REDIS_PORT}/0`,
    ], { stdio: ['ignore', out, out] });
    result.cleanup.push(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
    return { host, name, proc, logFile, page: `http://${host}:8080/` };
  };
  const n1 = start('127.0.0.1', '1');
  const n2 = start('127.0.0.2', '2');
  for (const n of [n1, n2]) {
    await until(`node ${n.name} to serve its page`, 10000, async () => {
      if (n.proc.exitCode !== null) throw new Error(`node ${n.name} exited\n${tail(n.logFile)}`);
      const res = await fetch(n.page + 'api/ice-servers');
      return res.ok;
    }, 50);
  }
  const browser = await pw.chromium.launch({ executablePath: opts.chromium, headless: true, args: BROWSER_ARGS });
  result.cleanup.push(() => browser.close().catch(() => {}));
  result.browser = browser.version();
  const room = 'two-' + Math.random().toString(36).slice(2, 8);
  const open = async (node) => {
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    await ctx.grantPermissions(['camera', 'microphone'], { origin: node.page.slice(0, -1) });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => result.pageErrors.push(String(e)));
    await page.goto(node.page, { waitUntil: 'load' });
    await page.fill('#room', room);
    await page.selectOption('#ice-policy', 'relay');
    await page.click('#join');
    return page;
  };
  const state = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.ringturn)));
  const events = (st, type) => st.events.filter((e) => e.dir === 'in' && e.type === type);
  const relayed = (st) => st.stats && st.stats.localType === 'relay' && st.stats.remoteType === 'relay'
    && st.stats.pairState === 'succeeded' && st.stats.framesDecoded > 0;
  const call = async (what, x, y) => until(what, 45000, async () => {
    const [p, q] = [await state(x), await state(y)];
    return relayed(p) && relayed(q) ? [p, q] : null;
  }, 250);

  const a = await open(n1);
  await until('A: joined (waiting)', 15000, async () => (await state(a)).phase === 'waiting');
  const b = await open(n2);
  const [sa, sb] = await call('A (node 1) and B (node 2): relay/relay with decoded frames', a, b);
  result.call = { a: sa.stats, b: sb.stats, aOtherJoin: events(sa, 'otherJoin').length };
  log(`call across nodes: A ${sa.stats.localAddress}:${sa.stats.localPort} <-> B ${sb.stats.localAddress}:${sb.stats.localPort}`);

  const c = await open(n2);
  const sc = await until('C (node 2): full', 15000, async () => {
    const st = await state(c);
    return st.phase === 'full' ? st : null;
  });
  result.full = { cEvents: sc.events.filter((e) => e.dir === 'in').map((e) => e.type) };

  const killed = Date.now();
  n2.proc.kill('SIGKILL');
  await until('A: bye after node 2 died', 15000, async () => events(await state(a), 'bye').length === 1);
  result.nodeDeath = { byeAfterMs: Date.now() - killed };
  log(`bye ${result.nodeDeath.byeAfterMs} ms after the SIGKILL`);

  const d = await open(n1);
  const [sa2, sd] = await call('A and D (node 1): a fresh call in the freed room', a, d);
  result.fresh = { a: sa2.stats, d: sd.stats };
  result.ok = true;
}

const result = { ok: false, pageErrors: [], consoleErrors: [], cleanup: [] };
const hardStop = setTimeout(() => {
  log(`no result within ${opts.timeout} ms; giving up`);
  finish(1);
}, opts.timeout);

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(hardStop);
  for (const f of result.cleanup.reverse()) {
    try { await Promise.race([f(), sleep(3000)]); } catch { /* best effort */ }
  }
  sweepNamespace();
  delete result.cleanup;
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n');
  if (code !== 0) {
    log(`ringturn log tail:\n${tail(path.join(opts.workdir, 'ringturn.log'))}`);
    log(`logs kept in ${opts.workdir}`);
  } else {
    fs.rmSync(opts.workdir, { recursive: true, force: true });
  }
  process.exit(code);
}

process.on('SIGTERM', () => finish(143));
main(result).then(() => finish(0), (e) => {
  result.error = e && e.stack ? e.stack : String(e);
  log(`FAILED: ${result.error}`);
  finish(1);
});
