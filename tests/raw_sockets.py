"""Raw Engine.IO/Socket.IO clients for what python-socketio would never send: hand-built websocket frames (any
opcode, reserved bits, unmasked, compressed, fragmented, over-size) and long-polling POST bodies, and the live
worker's figures (pid, RSS) and log to judge what they did."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import threading
import time
import zlib
from functools import cache
from pathlib import Path

import requests

from tests.live_server import LiveServer, process_status, rss, worker_pid

TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9
CONTINUATION = 0x0
MiB = 1024 * 1024
ACCESS_LINE = re.compile(r'"logger": ?"fantasize\.requests"')  # the request line (request_log): one per request
ONCE = "(further occurrences of this error will be logged with level INFO)"  # engine.io's, once per kind


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True,
          length: int | None = None) -> bytes:
    """One websocket frame as a client sends it. The mask key is zero, so the payload goes as given (a valid mask:
    RFC 6455 asks for one, not for a random one). `length` may claim more than `payload` holds (streamed after)."""
    length = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    mask = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask | length])
    elif length < 1 << 16:
        head += bytes([mask | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask | 127]) + struct.pack("!Q", length)
    return head + (b"\0\0\0\0" if masked else b"") + payload


@cache
def deflated_event(size: int) -> bytes:
    """A Socket.IO event carrying `size` bytes of text, compressed as permessage-deflate sends a message (raw
    deflate, the trailing 00 00 ff ff removed): about a thousandth of its size."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [squeezer.compress(b'42["track_inventory","')]
    chunk = b"a" * MiB
    for _ in range(size // MiB):
        parts.append(squeezer.compress(chunk))
    parts.append(squeezer.compress(b'"]') + squeezer.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]


class RawSocket:
    """A websocket to /socket.io/ with nothing but a TCP socket: the handshake, frames out, frames in."""

    def __init__(self, server: LiveServer, offer: str | None = None, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if offer:
            lines.append(f"Sec-WebSocket-Extensions: {offer}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed during the handshake")
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *headers = head.decode().split("\r\n")
        if " 101 " not in status:
            raise ConnectionError(status)
        self.headers = {name.lower(): value.strip() for name, value in (h.split(":", 1) for h in headers)}
        # A server that accepts permessage-deflate compresses what it sends: read it as a client would.
        deflate = "permessage-deflate" in self.headers.get("sec-websocket-extensions", "")
        self.inflater = zlib.decompressobj(-15) if deflate else None
        self.close_code: int | None = None
        self.texts: list[str] = []
        self.eof = False

    def open(self) -> RawSocket:
        """Engine.IO's open packet, then Socket.IO's connect to the main namespace, as a client does."""
        opened = self.next_text()
        assert opened is not None and opened.startswith("0{"), opened
        self.send_text("40")
        connected = self.next_text()
        assert connected is not None and connected.startswith("40{"), connected
        return self

    # Out

    def send(self, data: bytes) -> bool:
        """False when the server has already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send_text(self, text: str) -> bool:
        return self.send(frame(TEXT, text.encode()))

    def stream(self, opcode: int, size: int, chunk: bytes = b"a" * 65536) -> int:
        """One frame claiming `size` bytes, its payload sent in chunks until done or refused; bytes sent."""
        if not self.send(frame(opcode, b"", length=size)):
            return 0
        sent = 0
        while sent < size:
            piece = chunk[:size - sent]
            if not self.send(piece):
                break
            sent += len(piece)
        return sent

    # In

    def _frame(self, timeout: float) -> tuple[int, bytes] | None:
        """The next frame from the server; None at the end of the connection or after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 2:
                length, at = self.buffer[1] & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, at = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, at = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if (length < 126 or at > 2) and len(self.buffer) >= at + length:
                    opcode, payload = self.buffer[0] & 0xF, self.buffer[at:at + length]
                    if self.buffer[0] & 0x40 and self.inflater is not None:  # RSV1: compressed
                        payload = self.inflater.decompress(payload + b"\0\0\xff\xff")
                    self.buffer = self.buffer[at + length:]
                    return opcode, payload
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.eof = True
            self.buffer += data

    def next_text(self, timeout: float = 10) -> str | None:
        """The next text message (answering pings), None when the connection closed or nothing came in time."""
        deadline = time.monotonic() + timeout
        while (got := self._frame(max(0.0, deadline - time.monotonic()))) is not None:
            opcode, payload = got
            if opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return None
            if opcode == TEXT:
                text = payload.decode()
                if text == "2":  # Engine.IO's ping
                    self.send_text("3")
                    continue
                self.texts.append(text)
                return text
        return None

    def closed(self, timeout: float = 10) -> bool:
        """Wait until the server closes the connection (a close frame or the end of the stream), reading what comes
        before; False if it stays open for `timeout`."""
        deadline = time.monotonic() + timeout
        while self.close_code is None and not self.eof and time.monotonic() < deadline:
            self.next_text(timeout=max(0.0, deadline - time.monotonic()))
        return self.close_code is not None or self.eof

    def close(self) -> None:
        self.sock.close()


def upgrade_status(server: LiveServer, headers: list[str], query: str = "EIO=4&transport=websocket") -> int:
    """The HTTP status a websocket request to /socket.io/ with these headers gets."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        lines = [f"GET /socket.io/?{query} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


class Polling:
    """A Socket.IO client over long-polling, by hand."""

    def __init__(self, server: LiveServer) -> None:
        self.url = f"{server.url}/socket.io/"
        self.http = requests.Session()
        opened = self.http.get(self.url, params={"EIO": "4", "transport": "polling"}, timeout=10)
        assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
        self.sid = json.loads(opened.text[1:])["sid"]
        assert self.post("40").status_code == 200
        assert self.get().text.startswith("40{")

    def post(self, body: bytes | str, **headers: str) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return self.http.post(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid}, data=data,
                              headers=headers, timeout=10)

    def get(self) -> requests.Response:
        return self.http.get(self.url, params={"EIO": "4", "transport": "polling", "sid": self.sid}, timeout=40)

    def closed(self) -> bool:
        """True when the server ended this session: its next poll answers Engine.IO's close packet or a refusal."""
        answer = self.get()
        return answer.status_code == 400 or "\x1e1" in f"\x1e{answer.text}"

    def close(self) -> None:
        """Say goodbye (Engine.IO's close packet), as a client does; refused if the server already ended it."""
        try:
            self.post("1")
        finally:
            self.http.close()


class Watch:
    """A worker's memory and log while something is done to it: the largest RSS growth seen (sampled every 5 ms,
    and the growth of its peak, VmHWM, which no sample can miss), and the log lines written meanwhile."""

    def __init__(self, server: LiveServer, log_path: Path) -> None:
        self.pid = worker_pid(server)
        self.log_path = log_path
        self.growth = 0
        self.new_log = ""

    def __enter__(self) -> Watch:
        self._log_at = self.log_path.stat().st_size
        self._base, self._peak_before = rss(self.pid), process_status(self.pid, "VmHWM")
        self._peak = self._base
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, rss(self.pid))

    def __exit__(self, *_exc) -> None:
        time.sleep(0.3)  # what the worker does with the input once it has it
        self._stop.set()
        self._sampler.join()
        self._peak = max(self._peak, rss(self.pid))
        self.growth = max(self._peak - self._base, process_status(self.pid, "VmHWM") - self._peak_before)
        with self.log_path.open("rb") as log:
            log.seek(self._log_at)
            self.new_log = log.read().decode(errors="replace")

    @property
    def log_lines(self) -> list[str]:
        """What the worker logged meanwhile, but for the request lines (one per HTTP request, by design)."""
        return [line for line in self.new_log.splitlines()
                if line.strip() and not ACCESS_LINE.search(line) and not line.endswith(ONCE)]
