#!/usr/bin/env python3
"""Probes a running ringturn's signaling server from outside the process
(stdlib only; a WebSocket client written out by hand, RFC 6455 §5).

    process_probe.py PORT [--pid PID]

Prints `key=value` lines: the page's status, the /api/ice-servers JSON, the
`joined` a WebSocket client gets; with --pid it then sends SIGTERM to PID
while that WebSocket is still open and prints how the socket was closed
(`ws-close=CODE`) and how long the process took to exit (`stop-ms=N`).
"""

import base64
import json
import os
import signal
import socket
import struct
import sys
import time


def http_get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1])
    return status, body.decode("utf-8", "replace")


class Ws:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=3)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(
            (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("closed during the handshake")
            data += chunk
        head, _, self.buf = data.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"no upgrade: {head!r}")

    def send_text(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes([0x81, 0x80 | n])
        else:
            header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", n)
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _take(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(opcode, payload) of the next frame (server frames are unmasked)."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return b0 & 0x0F, self._take(n)

    def next_json(self):
        while True:
            op, payload = self.frame()
            if op == 1:
                return json.loads(payload)
            if op == 8:
                raise EOFError("closed")


def main():
    port = int(sys.argv[1])
    pid = int(sys.argv[sys.argv.index("--pid") + 1]) if "--pid" in sys.argv else None
    status, body = http_get(port, "/")
    print(f"page-status={status}")
    has_join = 'id="join"' in body
    print(f"page-has-join={has_join}")
    status, body = http_get(port, "/api/ice-servers")
    print(f"ice-status={status}")
    print(f"ice={json.dumps(json.loads(body), separators=(',', ':'))}")
    ws = Ws(port)
    ws.send_text(json.dumps({"type": "join", "room": "probe"}))
    joined = ws.next_json()
    print(f"joined={json.dumps(joined, separators=(',', ':'))}")
    if pid is None:
        return 0
    start = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    ws.s.settimeout(2)
    code = None
    try:
        while True:
            op, payload = ws.frame()
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                break
    except (EOFError, OSError):
        pass
    print(f"ws-close={code}")
    while time.monotonic() - start < 3:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # A zombie until its parent reaps it: look at its state.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.005)
    print(f"stop-ms={int((time.monotonic() - start) * 1000)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
