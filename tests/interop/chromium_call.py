#!/usr/bin/env python3
"""Headless Chromium calls itself through ringturn (stdlib only).

Meant to run inside a fresh network namespace holding only loopback:

    unshare --net python3 tests/interop/chromium_call.py --ringturn target/debug/ringturn --backend uring

It brings `lo` up, starts ringturn on 127.0.0.1:3478, waits until it answers a
STUN Binding request, serves call.html on 127.0.0.1:8000, runs headless
Chromium on it and waits for the page to POST its JSON to /result. It prints
that JSON as one line `RESULT {...}` and exits 0; on a timeout or a failure to
start anything it exits non-zero with a message. Ringturn's and Chromium's
logs go to files in a temporary directory; their tails are printed on stderr
when the page reports a failure (or always with --show-logs).
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TURN_PORT = 3478
TLS_PORT = 5349
HTTP_PORT = 8000
USER = "web"
PASSWORD = "rtc"
REALM = "example.org"


def log(msg):
    print(f"[driver {time.monotonic() - START:6.2f}s] {msg}", file=sys.stderr, flush=True)


START = time.monotonic()


def tail(path, lines=80):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def stun_binding_ok(port, timeout=0.2, host="127.0.0.1"):
    """Sends a Binding request by hand and checks for a Binding success response."""
    txid = os.urandom(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(req, (host, port))
        data, _ = s.recvfrom(2048)
    except OSError:
        return False
    finally:
        s.close()
    if len(data) < 20:
        return False
    mtype, _length, cookie = struct.unpack("!HHI", data[:8])
    # Any Binding answer means it is up: a success, or a 401 under secure-stun.
    return mtype in (0x0101, 0x0111) and cookie == 0x2112A442 and data[8:20] == txid


class Results:
    def __init__(self):
        self.cond = threading.Condition()
        self.body = None

    def put(self, body):
        with self.cond:
            self.body = body
            self.cond.notify_all()

    def wait(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.body is not None, timeout)
            return self.body


def make_handler(page, results):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # keep stderr for the interesting parts
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/call.html"):
                body = page
                ctype = "text/html; charset=utf-8"
                code = 200
            else:
                body = b"not found"
                ctype = "text/plain"
                code = 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path != "/result":
                self.send_error(404)
                return
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(n)
            self.send_response(204)
            self.end_headers()
            results.put(raw)

    return Handler


def stop(proc, name):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) did not exit after SIGKILL")


def netns_id(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def ancestors():
    """This process and its ancestors (unshare --fork stays in the namespace)."""
    out = set()
    pid = os.getpid()
    while pid > 0 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def sh(*cmd):
    subprocess.run(list(cmd), check=True, stdout=subprocess.DEVNULL)


def veth_topology(pass_obj=None):
    """The kernel fast path's topology (TESTING.md): this namespace is the
    server's, with vs at 198.51.100.1; a second one (held by a sleeping
    child, returned) has vc at .2 and .3 for the browser. Returns the holder."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    for _ in range(100):
        if netns_id(holder.pid) not in (None, netns_id("self")):
            break
        time.sleep(0.02)
    pid = str(holder.pid)
    sh("ip", "link", "add", "vs", "type", "veth", "peer", "name", "vc")
    sh("ip", "link", "set", "vc", "netns", pid)
    sh("ip", "addr", "add", "198.51.100.1/24", "dev", "vs")
    sh("ip", "link", "set", "vs", "up")
    with open("/proc/sys/net/ipv4/conf/vs/forwarding", "w") as f:
        f.write("1")
    client = ["nsenter", "-t", pid, "-n"]
    sh(*client, "ip", "link", "set", "lo", "up")
    sh(*client, "ip", "addr", "add", "198.51.100.2/24", "dev", "vc")
    sh(*client, "ip", "addr", "add", "198.51.100.3/24", "dev", "vc")
    sh(*client, "ip", "link", "set", "vc", "up")
    # Chromium offers host candidates of the interface its default route uses.
    sh(*client, "ip", "route", "add", "default", "via", "198.51.100.1")
    # Full checksums from the browser's stack, and an XDP program on vc so
    # frames the server's XDP sends back arrive (tests/xdp_relay.rs says why).
    if pass_obj:
        sh(*client, "ethtool", "-K", "vc", "tx", "off")
        sh(*client, "ip", "link", "set", "dev", "vc", "xdp", "obj", pass_obj, "sec", "xdp")
    return holder


def fetch_metrics(port=9641):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    text = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[-1]
    return [l for l in text.splitlines()
            if l.startswith(("ringturn_relayed_", "ringturn_xdp_"))]


def sweep_namespace(other=None):
    """SIGKILLs whatever still runs in this private network namespace (and in
    the browser's, `other`): only processes this driver started can be there
    (Chromium's helpers, e.g. its crash handler, which calls setsid and
    outlives the browser)."""
    mine = netns_id("self")
    if mine is None:
        return
    keep = ancestors()
    killed = 0
    for _ in range(20):
        left = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in keep:
                continue
            if netns_id(name) in (mine, other):
                left.append(int(name))
        if not left:
            log(f"namespace swept: {killed} left-over processes killed")
            return
        killed += len(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    log(f"processes left in the namespace: {left}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ringturn", required=True, help="path of the ringturn binary")
    ap.add_argument("--backend", default="auto", help="io-backend: auto, uring or batch")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--timeout", type=float, default=60.0, help="bound on the whole run, seconds")
    ap.add_argument("--page-timeout-ms", type=int, default=20000)
    ap.add_argument("--count", type=int, default=20, help="messages each way")
    ap.add_argument("--verbose", action="store_true", help="ringturn --verbose")
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp", "tls"],
                    help="how Chromium reaches the TURN server: turn:?transport=udp|tcp or turns:")
    ap.add_argument("--cert", help="PEM certificate for ringturn's TLS port (with --transport tls)")
    ap.add_argument("--pkey", help="PEM private key for ringturn's TLS port")
    ap.add_argument("--spki", help="base64 SHA-256 of the certificate's public key: Chromium "
                    "trusts exactly that key (--ignore-certificate-errors-spki-list)")
    ap.add_argument("--chromium-log", action="store_true", help="Chromium --enable-logging --v=1")
    ap.add_argument("--show-logs", action="store_true", help="print log tails even on success")
    ap.add_argument("--workdir", help="directory for logs and the browser profile, kept "
                    "afterwards (default: a new temporary one, removed unless something failed)")
    ap.add_argument("--no-netns-check", action="store_true",
                    help="run even if interfaces other than lo exist (not recommended)")
    ap.add_argument("--xdp-veth", metavar="OBJ",
                    help="the kernel fast path: ringturn on a veth end with xdp-interface, "
                    "the browser in a second namespace behind it (OBJ: the XDP object, "
                    "attached to the browser's end as a pass-through)")
    ap.add_argument("--ringturn-arg", action="append", default=[],
                    help="one more ringturn option (repeatable), e.g. --relay-socket-mode=shared")
    ap.add_argument("--config", metavar="FILE",
                    help="run ringturn on this turnserver.conf (ringturn -c FILE) instead of "
                    "the driver's options; with --veth it may leave listening-ip out")
    ap.add_argument("--user", default=USER, help="TURN username the page uses")
    ap.add_argument("--password", default=PASSWORD, help="TURN password the page uses")
    ap.add_argument("--rest-secret", help="make TURN REST API credentials from this "
                    "static-auth-secret for --user (coturn's use-auth-secret)")
    ap.add_argument("--turn-host", metavar="ADDR",
                    help="with --veth: give the server's veth end this address too and "
                    "point the page's TURN server at it")
    ap.add_argument("--veth", action="store_true",
                    help="ringturn on a veth end at 198.51.100.1, the browser in a second "
                    "namespace behind it (no XDP)")
    ap.add_argument("--alternate-node", action="store_true",
                    help="with --veth: start a second ringturn (node B) on 198.51.100.4 with the same options "
                    "and make the first redirect Allocate to it (alternate-server, issue 14); "
                    "the result counts each node's allocations")
    ap.add_argument("--pc2", default="relay", choices=["relay", "host"],
                    help="pc2 relay-only too, or on its own host candidates")
    args = ap.parse_args()

    deadline = START + args.timeout

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ifaces = sorted(name for _, name in socket.if_nameindex())  # this namespace's
    private_netns = ifaces == ["lo"]
    if not private_netns and not args.no_netns_check:
        log(f"refusing to run outside a private network namespace (interfaces: {ifaces}); "
            "start me with `unshare --net`")
        return 2

    with open(os.path.join(HERE, "call.html"), "rb") as f:
        page = f.read()

    if args.workdir:
        tmp = args.workdir
        os.makedirs(tmp, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="ringturn-chromium-")
    turn_log = os.path.join(tmp, "ringturn.log")
    chrome_log = os.path.join(tmp, "chromium.log")
    turn = chrome = server = holder = node_b = None
    node_b_log = os.path.join(tmp, "ringturn-b.log")
    failed = True
    host = "127.0.0.1"
    try:
        if args.xdp_veth or args.veth:
            holder = veth_topology(args.xdp_veth)
            host = "198.51.100.1"
            if args.turn_host and args.turn_host != host:
                sh("ip", "addr", "add", f"{args.turn_host}/24", "dev", "vs")
        cmd = [args.ringturn, "-c", args.config] if args.config else [
            args.ringturn,
            f"--listening-ip={host}", f"--listening-port={TURN_PORT}",
            f"--relay-ip={host}", "--min-port=49152", "--max-port=49999",
            "--lt-cred-mech", f"--user={USER}:{PASSWORD}", f"--realm={REALM}",
            "--allow-loopback-peers", f"--io-backend={args.backend}",
        ]
        if args.config:
            pass
        elif args.xdp_veth:
            cmd += ["--xdp-interface=vs", "--prometheus", "--prometheus-port=9641"]
        cmd += args.ringturn_arg
        if args.verbose:
            cmd.append("--verbose")
        if args.alternate_node:
            # WebRTC refuses a redirect to a loopback address ("Blocking
            # attempted redirect to loopback address"): both nodes on the veth.
            if args.config or not args.veth or args.transport == "tls":
                log("--alternate-node needs --veth and the driver's own options")
                return 2
            b_host = "198.51.100.4"
            sh("ip", "addr", "add", f"{b_host}/24", "dev", "vs")
            # The same options (--ringturn-arg too); only A redirects.
            b_cmd = [c.replace(f"={host}", f"={b_host}") for c in cmd]
            cmd.append(f"--alternate-server={b_host}:{TURN_PORT}")
            log("starting node B: " + " ".join(b_cmd))
            with open(node_b_log, "wb") as out:
                node_b = subprocess.Popen(b_cmd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
            ready_by = min(time.monotonic() + 5.0, deadline)
            while not stun_binding_ok(TURN_PORT, host=b_host):
                if node_b.poll() is not None or time.monotonic() > ready_by:
                    log(f"node B did not answer a STUN Binding; log:\n{tail(node_b_log)}")
                    return 3
                time.sleep(0.05)
        turn_port = TURN_PORT
        if args.transport == "tls":
            if not (args.cert and args.pkey and args.spki):
                log("--transport tls needs --cert, --pkey and --spki")
                return 2
            turn_port = TLS_PORT
            cmd += [f"--cert={args.cert}", f"--pkey={args.pkey}",
                    f"--tls-listening-port={TLS_PORT}"]
        log("starting " + " ".join(cmd))
        with open(turn_log, "wb") as out:
            turn = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        ready_by = min(time.monotonic() + 5.0, deadline)
        while True:
            if turn.poll() is not None:
                log(f"ringturn exited early with status {turn.returncode}; log:\n{tail(turn_log)}")
                return 3
            if stun_binding_ok(TURN_PORT, host=host):
                break
            if time.monotonic() > ready_by:
                log(f"ringturn did not answer a STUN Binding within 5 s; log:\n{tail(turn_log)}")
                return 3
            time.sleep(0.05)
        log("ringturn answers STUN Binding")

        results = Results()
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        server = http.server.ThreadingHTTPServer((host, HTTP_PORT),
                                                 make_handler(page, results))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

        user, password = args.user, args.password
        if args.rest_secret:
            # The TURN REST API's time-limited credentials (coturn's use-auth-secret).
            user = f"{int(time.time()) + 3600}:{args.user}"
            mac = hmac.new(args.rest_secret.encode(), user.encode(), hashlib.sha1).digest()
            password = base64.b64encode(mac).decode()
        query = (f"port={turn_port}&user={urllib.parse.quote(user)}"
                 f"&pass={urllib.parse.quote(password)}&count={args.count}"
                 f"&timeout_ms={args.page_timeout_ms}&transport={args.transport}")
        if args.transport == "tls":
            query += "&host=localhost"
        elif args.xdp_veth or args.veth:
            query += f"&host={args.turn_host or host}"
        query += f"&pc2={args.pc2}"
        url = f"http://{host}:{HTTP_PORT}/call.html?{query}"
        profile = os.path.join(tmp, "profile")
        os.makedirs(profile, exist_ok=True)
        ccmd = (["nsenter", "-t", str(holder.pid), "-n"] if holder else []) + [
            args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
            "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
            # Host candidates as addresses, not mDNS names nobody here resolves.
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ]
        if args.spki:
            ccmd.append(f"--ignore-certificate-errors-spki-list={args.spki}")
        if args.chromium_log:
            ccmd += ["--enable-logging=stderr", "--v=1",
                     "--vmodule=*/webrtc/*=1,*/p2p/*=2,*turn*=3"]
        ccmd.append(url)
        log("starting chromium on " + url)
        with open(chrome_log, "wb") as out:
            chrome = subprocess.Popen(ccmd, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

        body = None
        while body is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            body = results.wait(min(left, 0.25))
            if body is None and chrome.poll() is not None:
                log(f"chromium exited early with status {chrome.returncode}")
                break
            if body is None and turn.poll() is not None:
                log(f"ringturn died with status {turn.returncode}")
                break
        if body is None:
            log(f"no result from the page within {args.timeout:.0f} s of start")
            log(f"ringturn log tail:\n{tail(turn_log)}")
            log(f"chromium log tail:\n{tail(chrome_log)}")
            return 4
        try:
            result = json.loads(body)
        except ValueError as e:
            log(f"page posted invalid JSON ({e}): {body[:500]!r}")
            return 5
        log(f"page reported after {result.get('elapsed_ms')} ms: ok={result.get('ok')}")
        turn_alive = turn.poll() is None and (node_b is None or node_b.poll() is None)
        result["ringturn_alive"] = turn_alive
        if node_b is not None:
            def created(path):
                with open(path, "rb") as f:
                    return f.read().count(b"allocation created")
            result["allocations"] = {"a": created(turn_log), "b": created(node_b_log)}
        result["backend"] = args.backend
        if args.xdp_veth and turn_alive:
            result["metrics"] = fetch_metrics()
            turn.send_signal(signal.SIGTERM)
            try:
                result["ringturn_exit"] = turn.wait(timeout=10)
            except subprocess.TimeoutExpired:
                result["ringturn_exit"] = None
            link = subprocess.run(["ip", "-d", "link", "show", "vs"], capture_output=True,
                                  text=True).stdout
            result["xdp_after_exit"] = "prog/xdp" in link
        failed = not result.get("ok") or not turn_alive
        print("RESULT " + json.dumps(result, separators=(",", ":")), flush=True)
        return 0
    finally:
        stop(chrome, "chromium")
        stop(turn, "ringturn")
        stop(node_b, "ringturn node B")
        if private_netns:
            sweep_namespace(netns_id(holder.pid) if holder else None)
        stop(holder, "namespace holder")
        if server is not None:
            server.shutdown()
            server.server_close()
        if failed or args.show_logs:
            log(f"ringturn log tail ({turn_log}):\n{tail(turn_log)}")
            if node_b is not None:
                log(f"node B log tail ({node_b_log}):\n{tail(node_b_log)}")
            if args.show_logs or args.chromium_log:
                log(f"chromium log tail ({chrome_log}):\n{tail(chrome_log, 200)}")
        if args.workdir or args.show_logs or args.chromium_log or failed:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main())
