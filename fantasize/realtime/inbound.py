"""What a socket client may send (API.md "Real time"): text only, uncompressed, each message at most
SOCKET_MAX_MESSAGE_BYTES, well formed. Anything else closes that socket before it is held, with one log line and
no traceback.

One check per place where input is read:
- websocket frames: `TextWebSocket`, engine.io's websocket in both async modes (gevent, threading). It does not
  negotiate permessage-deflate (a 97 kB compressed frame could inflate to 100 MB before any check), counts a
  message's bytes as they arrive and closes at the bound (1009), closes at the first binary frame (1003), holds at
  most PENDING_MESSAGES received messages (then stops reading: the client waits, not the worker's memory), and hands
  engine.io only a well-formed Engine.IO packet;
- long-polling POST bodies: `refuse_request`, called by Realtime's dispatch, reads the body (bounded) and checks
  it (`polling_refusal`) before engine.io decodes it;
- Socket.IO packets, from either transport: `TextPacket` refuses binary packets (BINARY_EVENT, BINARY_ACK, whose
  attachments would pile up until the socket left), packets a client never sends, and events whose shape the
  server would trip on; `guard` turns that refusal into closing the socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket as socket_module
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import engineio
import simple_websocket
import socketio
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from engineio.payload import Payload
from socketio import packet as sio
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Pong, Request, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

log = logging.getLogger("fantasize.realtime")

PENDING_MESSAGES = 4  # received websocket messages held for engine.io at most, per socket
# The Engine.IO packets a client sends: CLOSE, PONG, MESSAGE; over a websocket also PING and UPGRADE (the upgrade's
# "2probe" and "5"). Others are the server's; engine.io answers a POSTed PING or NOOP by closing the socket and
# waiting for the next GET to take the close, holding the request meanwhile.
POLLING_PACKETS = frozenset("134")
WEBSOCKET_PACKETS = frozenset("12345")
RESERVED_EVENTS = frozenset(socketio.Server.reserved_events)  # connect, disconnect: the server's own, not events


class Refused(ValueError):
    """Input this server does not take; the message says why (for the log, never echoed)."""


REFUSED = "fantasize.refused"  # in a socket's WSGI environ once it was refused


def refuse(reason: str, environ: dict[str, Any] | None, **where: Any) -> None:
    """The one line a refused socket leaves in the log: not again for what it sent before the close took effect
    (`environ`: its request's, shared by engine.io, socket.io and the websocket)."""
    if environ is not None:
        if environ.get(REFUSED):
            return
        environ[REFUSED] = reason
    log.warning("socket input refused: %s", reason, extra={"reason": reason, **where})


# Engine.IO packets (both transports)


def engine_packet_refusal(packet: str | bytes, types: frozenset[str]) -> str | None:
    """Why an Engine.IO packet from a client is refused, or None when engine.io may decode it (`types`: the packet
    types the transport takes)."""
    if not isinstance(packet, str):
        return "binary message"
    if not packet:
        return "empty packet"
    if packet[0] == "b":
        return "binary message"  # base64 over text: engine.io would decode it to bytes
    if packet[0] not in types:
        return "not a client's Engine.IO packet"
    return None


# Socket.IO packets (both transports)


class TextPacket(sio.Packet):
    """Socket.IO's packet, as it decodes what a client sends, refusing (`Refused`) what this server does not take:
    binary packets and their attachments, packet types only a server sends, and events without a name.

    Given to python-socketio as its `serializer` (its documented seam for a Packet subclass). The server's own
    packets encode as before: it never sends binary.
    """

    uses_binary_events = False

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise Refused("binary message")
        kind = encoded_packet[:1]
        if kind in (str(sio.BINARY_EVENT), str(sio.BINARY_ACK)):
            raise Refused("binary packet")
        if kind not in (str(sio.CONNECT), str(sio.DISCONNECT), str(sio.EVENT), str(sio.ACK)):
            raise Refused("not a Socket.IO packet")
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:
            raise Refused(f"malformed packet ({type(exc).__name__})") from None
        if attachments:
            raise Refused("binary packet")
        if self.packet_type == sio.EVENT:
            if not (isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
                raise Refused("event without a name")
            if self.data[0] in RESERVED_EVENTS:
                raise Refused(f"reserved event {self.data[0]!r}")
        elif self.packet_type == sio.ACK and not isinstance(self.data, list):
            raise Refused("acknowledgement without arguments")
        elif self.packet_type == sio.CONNECT and not (self.data is None or isinstance(self.data, dict)):
            raise Refused("connect payload is not an object")
        return 0


def close_quietly(eio: engineio.Server, eio_sid: str) -> None:
    """Close an Engine.IO socket and forget it, as `Server.disconnect` does, but without waiting for its queue to
    drain (which waits for the next long-polling GET, which may never come)."""
    sock = eio.sockets.pop(eio_sid, None)
    if sock is not None and not sock.closed:
        sock.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)


def guard(server: socketio.Server) -> None:
    """Close the socket that sends a packet `TextPacket` refuses (one log line), instead of engine.io logging a
    traceback per packet and keeping the socket."""
    handle: Callable[[str, Any], None] = server._handle_eio_message

    def on_message(eio_sid: str, data: Any) -> None:
        if eio_sid not in server.eio.sockets:
            return  # closed already: what it sent before the close took effect is dropped, unlogged
        try:
            if not data:  # python-socketio would take it for an event without a name
                raise Refused("empty message")
            handle(eio_sid, data)
        except Refused as exc:
            refuse(str(exc), server.environ.get(eio_sid), sid=eio_sid)
            close_quietly(server.eio, eio_sid)

    server.eio.on("message", on_message)


# Long-polling


def refuse_request(server: socketio.Server, environ: dict[str, Any], max_bytes: int) -> tuple[int, str] | None:
    """(status, message) for a /socket.io/ request refused before engine.io sees it (the admission gate answers
    it with the API's error body); None lets engine.io serve it:
    - a long-polling POST whose body `polling_refusal` refuses (its socket closed): 400, 413 over the bound;
    - a POST to a socket closed but not yet forgotten (engine.io would answer 500): 400;
    - a websocket GET without its Upgrade headers (engine.io would take it for a poll and answer 500): 400."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("REQUEST_METHOD") == "POST":
        return _refuse_post(server, environ, max_bytes, (query.get("sid") or [None])[0])
    if environ.get("REQUEST_METHOD") == "GET" and query.get("transport") == ["websocket"]:
        connection = {token.strip() for token in environ.get("HTTP_CONNECTION", "").lower().split(",")}
        if "upgrade" not in connection or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return 400, "A websocket request needs Connection: Upgrade and Upgrade: websocket"
    return None


def _refuse_post(server: socketio.Server, environ: dict[str, Any], max_bytes: int,
                 sid: str | None) -> tuple[int, str] | None:
    eio = server.eio
    sock = eio.sockets.get(sid) if sid else None
    if sock is None or sock.upgraded:
        return None  # engine.io answers these itself, reading no body
    if sock.closed:
        return 400, "The socket is closed"
    reason = polling_refusal(environ, max_bytes)
    if reason is None:
        return None
    refuse(reason, server.environ.get(sid), sid=sid, transport="polling")
    close_quietly(eio, sid)
    return (413 if reason == too_large(max_bytes) else 400), f"Refused, and the socket closed: {reason}"


def too_large(max_bytes: int) -> str:
    return f"message over {max_bytes} bytes"


def polling_refusal(environ: dict[str, Any], max_bytes: int) -> str | None:
    """Why a long-polling POST is refused, or None; the body it read (at most max_bytes) is put back for
    engine.io."""
    length = environ.get("CONTENT_LENGTH") or "0"
    if not (length.isascii() and length.isdigit()):
        return "invalid Content-Length"
    if int(length) > max_bytes:
        return too_large(max_bytes)
    body = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = _Body(body)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return "payload is not UTF-8"
    if not text:
        return None
    if text.startswith("d="):  # JSONP, as engine.io reads it
        text = (parse_qs(text).get("d") or [""])[0]
    packets = text.split("\x1e")
    if len(packets) > Payload.max_decode_packets:
        return f"more than {Payload.max_decode_packets} packets in one payload"
    for packet in packets:
        reason = engine_packet_refusal(packet, POLLING_PACKETS)
        if reason is not None:
            return reason
    return None


class _Body:
    """A request body already read, readable again (engine.io calls read(length))."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._at + size
        chunk, self._at = self._data[self._at:end], min(end, len(self._data))
        return chunk


# Websocket


class TextServer(simple_websocket.Server):
    """simple_websocket's server, reading text messages only, each at most `max_message_size` bytes, without
    compression, with at most PENDING_MESSAGES held for the reader."""

    def __init__(self, environ: dict[str, Any], max_message_size: int, event_class: Any = None,
                 **options: Any) -> None:
        self._parts: list[str] = []
        self._drained = (event_class or threading.Event)()  # set when the reader took a message
        super().__init__(environ, max_message_size=max_message_size, event_class=event_class, **options)

    def _handle_events(self) -> bool:
        out = b""
        keep_going = True
        try:
            for event in self.ws.events():
                if isinstance(event, Request):
                    self.subprotocol = self.choose_subprotocol(event)
                    # no `extensions`: permessage-deflate is not negotiated, whatever the client offers
                    out += self.ws.send(AcceptConnection(subprotocol=self.subprotocol))
                elif isinstance(event, CloseConnection):
                    out += self.ws.send(event.response())
                    self.close_reason, self.close_message = event.code, event.reason
                    keep_going = False
                    break
                elif isinstance(event, Ping):
                    out += self.ws.send(event.response())
                elif isinstance(event, Pong):
                    self.pong_received = True
                elif isinstance(event, BytesMessage):
                    out += self._refuse(CloseReason.UNSUPPORTED_DATA, "binary message")
                    keep_going = False
                    break
                elif isinstance(event, TextMessage):
                    self.incoming_message_len += len(event.data.encode())
                    if self.incoming_message_len > self.max_message_size:
                        out += self._refuse(CloseReason.MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes")
                        keep_going = False
                        break
                    self._parts.append(event.data)
                    if event.message_finished:
                        self.input_buffer.append("".join(self._parts))
                        self._parts.clear()
                        self.incoming_message_len = 0
                        self.event.set()
        except LocalProtocolError:
            keep_going = False
        if out:
            self.sock.sendall(out)
        if not keep_going:
            self._parts.clear()
            self.connected = False
            self.event.set()
        elif self.connected:
            self._wait_for_reader()
        return keep_going

    def _refuse(self, code: CloseReason, reason: str) -> bytes:
        refuse(reason, self.environ, transport="websocket", remote=self.environ.get("REMOTE_ADDR"))
        self.close_reason, self.close_message = code, reason
        self.connected = False  # before the close frame goes out: engine.io's writer must not send another
        return self.ws.send(CloseConnection(code, reason))

    def _wait_for_reader(self) -> None:
        """Stop reading while PENDING_MESSAGES wait for engine.io (a client sending faster than it is served waits
        in its own TCP window)."""
        while self.connected and len(self.input_buffer) >= PENDING_MESSAGES:
            self._drained.clear()
            if len(self.input_buffer) >= PENDING_MESSAGES:
                self._drained.wait(timeout=1)

    def receive(self, timeout: float | None = None) -> str | None:
        message = super().receive(timeout)
        self._drained.set()
        return message

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Close, and end the connection too: the reader stops at once, whatever the client does. A close frame
        goes out only while none has (a refusal sent its own, or the client's close was answered)."""
        try:
            if self.ws.state is ConnectionState.OPEN:
                super().close(reason, message)
            self.connected = False
        finally:
            self._drained.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket_module.SHUT_RDWR)


def text_websocket(driver: type, max_bytes: int) -> type:
    """engine.io's websocket class for an async mode (`driver`, simple_websocket's WSGI wrapper as engine.io's
    gevent and threading drivers define it) that serves through `TextServer`."""
    if not issubclass(driver, SimpleWebSocketWSGI):
        raise RuntimeError(f"engine.io's websocket is {driver!r}: input bounds need simple_websocket's")

    class TextWebSocket(driver):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            # As SimpleWebSocketWSGI.__call__, with TextServer for simple_websocket.Server, and a 400 for a
            # malformed handshake (simple_websocket raises: a 500 and a traceback).
            try:
                self.ws = TextServer(environ, max_message_size=max_bytes, **self.server_args)
            except (RemoteProtocolError, simple_websocket.ConnectionError) as exc:
                refuse(f"websocket handshake ({exc})", environ, transport="websocket",
                       remote=environ.get("REMOTE_ADDR"))
                self.app.__self__.close(wait=False, abort=True)  # the engine.io socket this upgrade was for
                start_response("400 BAD REQUEST", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"Refused: a malformed websocket handshake"]
            served = self.app(self)
            if self.ws.mode == "gunicorn":
                raise StopIteration()
            if self.ws.mode == "werkzeug":
                raise ConnectionError()
            return served

        def wait(self) -> str | None:
            message = super().wait()
            if message is None:
                return None
            reason = engine_packet_refusal(message, WEBSOCKET_PACKETS)
            if reason is not None:
                refuse(reason, self.ws.environ, transport="websocket", remote=self.ws.environ.get("REMOTE_ADDR"))
                if self.ws.connected:
                    self.ws.close(CloseReason.POLICY_VIOLATION, reason)
                return None
            return message

    TextWebSocket.__qualname__ = f"TextWebSocket[{driver.__module__}]"
    return TextWebSocket


def install(server: socketio.Server, max_bytes: int) -> None:
    """Bound what `server`'s clients send: its websocket class (on this engine.io server only, never the driver's
    shared table) and the guard on its packets."""
    eio = server.eio
    eio._async = {**eio._async, "websocket": text_websocket(eio._async["websocket"], max_bytes)}
    guard(server)
