"""Socket input is bounded (issue 13 item 1, API.md "Real time"): text only, uncompressed, SOCKET_MAX_MESSAGE_BYTES
a message, well formed, on both transports.

Against one live gunicorn gevent worker on PostgreSQL and Redis, with raw clients (tests.raw_sockets) sending what
python-socketio never would: a deflated 100 MB message, over-size ones, 4,000 binary attachments, a binary event
followed by a normal one, a flood of messages within the bound, malformed frames and handshakes, long-polling
POSTs of each kind, and a seeded fuzz of a few thousand random and mutated frames over both transports. After
each: the socket is closed or the input refused, the worker's RSS grew by less than 10 MiB (at its peak, not only
after), it still answers HTTP and another socket (a python-socketio client tracking a product), and it logged at
most one line per refused socket, no traceback. A client upgrading from long-polling is still served; the same
bounds hold in threading mode (an in-process Werkzeug threaded server), the last test."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import socketio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from fantasize.realtime import realtime_of
from tests.conftest import database_url
from tests.live_server import LiveServer, worker_pid
from tests.raw_sockets import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    MiB,
    Polling,
    RawSocket,
    Watch,
    deflated_event,
    frame,
    upgrade_status,
)
from tests.realtime_clients import Peer
from tests.test_realtime import api, app, redis_settings  # noqa: F401  (fixtures: this module's app and Redis)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

LIMIT = 64 * 1024  # SOCKET_MAX_MESSAGE_BYTES's default, which the server runs with
RSS_BOUND = 10 * MiB


@pytest.fixture(scope="module")
def log_path(tmp_root) -> Path:
    return tmp_root / "socket-input.log"


@pytest.fixture(scope="module")
def server(tmp_root, redis_settings, log_path) -> Iterator[LiveServer]:  # noqa: F811
    """One gunicorn gevent worker (WEB_CONCURRENCY=1), its log at WARNING."""
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), **redis_settings}
    with LiveServer(env, workers=1, log_path=log_path) as live:
        yield live


@pytest.fixture
def tracker(server, factory) -> Iterator[tuple[Peer, int]]:
    """Another socket, connected before the attack: a python-socketio client tracking a product."""
    product = factory.product(quantity=5)
    peer = Peer(server.url, "tracker").connect()
    assert peer.call("track_inventory", product.id) == {"productId": product.id, "quantity": 5}
    yield peer, product.id
    peer.close()


def survived(server: LiveServer, watch: Watch, tracker: tuple[Peer, int], refused_sockets: int) -> None:
    """The worker is the same process, grew less than RSS_BOUND, answers HTTP and the other socket, and logged at
    most one line per refused socket, without a traceback."""
    peer, product_id = tracker
    assert worker_pid(server) == watch.pid, "the worker died"
    assert watch.growth < RSS_BOUND, f"RSS grew by {watch.growth / MiB:.1f} MiB"
    assert api(server, "GET", "/products").status_code == 200
    assert peer.call("track_inventory", product_id) == {"productId": product_id, "quantity": 5}
    assert "Traceback" not in watch.new_log, watch.new_log[-3000:]
    assert len(watch.log_lines) <= refused_sockets, watch.log_lines


def refusals(watch: Watch) -> list[str]:
    return [json.loads(line).get("reason") for line in watch.log_lines if "socket input refused" in line]


# Websocket


def test_compression_is_not_negotiated_and_a_deflated_100_mb_message_is_refused(server, log_path, tracker):
    with Watch(server, log_path) as watch:
        raw = RawSocket(server, offer="permessage-deflate; client_max_window_bits").open()
        raw.send(frame(TEXT, deflated_event(100 * MiB), rsv=0b100))  # RSV1: a compressed message
        closed = raw.closed()
        raw.close()
    survived(server, watch, tracker, refused_sockets=1)
    assert closed
    assert "sec-websocket-extensions" not in raw.headers, raw.headers
    assert raw.close_code in (1002, None), raw.close_code  # compressed without the extension: a protocol error


def test_an_over_size_message_closes_the_socket_with_1009_before_it_is_held(server, log_path, tracker):
    with Watch(server, log_path) as watch:
        under = RawSocket(server).open()  # just under the bound: answered
        pad = "a" * (LIMIT - 100)
        under.send_text(f'421["track_inventory",{{"productId":1,"pad":"{pad}"}}]')
        answers = [under.next_text(), under.next_text()]
        under.close()

        over = RawSocket(server).open()  # just over it, in one frame: refused with 1009
        over.send_text(f'42["track_inventory","{"a" * LIMIT}"]')
        over_closed = over.closed()
        over.close()

        huge = RawSocket(server).open()  # 40 MB in one frame, then 40 MB in 64 KiB fragments
        huge_sent = huge.stream(TEXT, 40 * MiB)
        huge_closed = huge.closed()
        huge.close()
        fragments = RawSocket(server).open()
        fragment = b"a" * 65536
        sent = fragments.send(frame(TEXT, b'42["x","', fin=False))
        for _ in range(640):
            if not (sent := fragments.send(frame(CONTINUATION, fragment, fin=False))):
                break
        fragments_closed = fragments.closed()
        fragments.close()
    survived(server, watch, tracker, refused_sockets=3)
    assert any(text and text.startswith('431[{"error"') for text in answers), answers  # VALIDATION_ERROR
    assert over_closed and over.close_code == 1009, over.close_code
    assert huge_closed and huge_sent < 40 * MiB
    assert fragments_closed and not sent
    assert refusals(watch) == [f"message over {LIMIT} bytes"] * 3


def test_4000_binary_attachments_close_the_socket_at_their_header(server, log_path, tracker):
    with Watch(server, log_path) as watch:
        raw = RawSocket(server).open()
        raw.send_text('454000-["track_inventory",{"_placeholder":true,"num":0}]')
        attachment = frame(BINARY, b"\x01" * 60_000)
        delivered = 0
        for _ in range(4000):
            if not raw.send(attachment):
                break
            delivered += 1
        closed = raw.closed()
        raw.close()
        alone = RawSocket(server).open()  # a binary message with no header: refused at once, 1003
        alone.send(frame(BINARY, b"\x04\x05"))
        alone_closed = alone.closed()
        alone.close()
    survived(server, watch, tracker, refused_sockets=2)
    assert closed and delivered < 4000
    assert alone_closed and alone.close_code == 1003, alone.close_code
    # the header's refusal ("binary packet") or its first attachment's ("binary message"), whichever is read first
    assert len(refusals(watch)) == 2 and set(refusals(watch)) <= {"binary message", "binary packet"}, refusals(watch)


def test_a_binary_event_closes_its_socket_and_the_next_event_is_not_taken_for_an_attachment(server, log_path,
                                                                                              tracker):
    _peer, product_id = tracker
    with Watch(server, log_path) as watch:
        raw = RawSocket(server).open()
        raw.send_text('451-["track_inventory",{"_placeholder":true,"num":0}]')
        raw.send_text(f'421["track_inventory",{product_id}]')
        closed = raw.closed()
        raw.close()
        again = RawSocket(server).open()  # a new socket's normal event is answered
        again.send_text(f'421["track_inventory",{product_id}]')
        answers = [again.next_text(), again.next_text()]
        again.close()
    survived(server, watch, tracker, refused_sockets=1)
    assert closed, "the socket stayed open after a binary event"
    assert not any(text.startswith(("42", "43")) for text in raw.texts), raw.texts
    assert sorted(answers) == sorted([f'42["tracking",{{"productId":{product_id},"quantity":5}}]',
                                      f'431[{{"productId":{product_id},"quantity":5}}]'])


def test_a_flood_of_messages_within_the_bound_is_read_no_faster_than_it_is_served(server, log_path, tracker):
    """1,000 messages of 60 kB sent as fast as the socket takes them: the worker holds a few at a time (the client
    waits in its TCP window), not 60 MB."""
    message = frame(TEXT, f'42["x","{"a" * 60_000}"]'.encode())
    with Watch(server, log_path) as watch:
        raw = RawSocket(server).open()
        delivered = sum(1 for _ in range(1000) if raw.send(message))
        raw.send_text('421["untrack_inventory",7]')
        answers = [raw.next_text(timeout=30), raw.next_text(timeout=30)]
        raw.close()
    survived(server, watch, tracker, refused_sockets=0)
    assert delivered == 1000
    assert '431[{"productId":7}]' in answers, answers


def test_a_client_that_upgrades_from_long_polling_is_served(server, tracker):
    """Engine.IO's upgrade (polling, then "2probe" and "5" over the websocket) passes the checks of both
    transports."""
    _peer, product_id = tracker
    client = socketio.Client(reconnection=False)
    client.connect(server.url, transports=["polling", "websocket"], wait_timeout=10)
    try:
        deadline = time.monotonic() + 10
        while client.transport() != "websocket" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.transport() == "websocket"
        assert client.call("track_inventory", product_id, timeout=10) == {"productId": product_id, "quantity": 5}
    finally:
        client.disconnect()


MALFORMED_FRAMES = {
    # websocket
    "invalid UTF-8": frame(TEXT, b"42[\"\xff\xfe\"]"),
    "unmasked": frame(TEXT, b'42["x"]', masked=False),
    "reserved opcode": frame(0x3, b"42"),
    "reserved bits": frame(TEXT, b"42", rsv=0b011),
    "long ping": frame(PING, b"p" * 200),
    "fragmented ping": frame(PING, b"p", fin=False),
    "continuation first": frame(CONTINUATION, b"42"),
    "close code 999": frame(CLOSE, b"\x03\xe7"),
    # Engine.IO
    "empty packet": frame(TEXT, b""),
    "not a packet type": frame(TEXT, b"x"),
    "unknown packet type": frame(TEXT, b"9"),
    "open from a client": frame(TEXT, b"0"),
    "base64 binary": frame(TEXT, b"b" + base64.b64encode(b"\x00\x01")),
    # Socket.IO
    "empty message": frame(TEXT, b"4"),
    "not a Socket.IO type": frame(TEXT, b"4x"),
    "event without data": frame(TEXT, b"42"),
    "truncated JSON": frame(TEXT, b"42["),
    "object for an event": frame(TEXT, b'42{"a":1}'),
    "unnamed event": frame(TEXT, b"42[1]"),
    "object as the event name": frame(TEXT, b"42[{}]"),
    "empty event": frame(TEXT, b"42[]"),
    "a client-sent connect event": frame(TEXT, b'42["connect",{"token":"x"}]'),
    "a client-sent disconnect event": frame(TEXT, b'42["disconnect"]'),
    "connect error from a client": frame(TEXT, b'44"no"'),
    "deep nesting": frame(TEXT, b"42" + b"[" * 60_000),
    "ack without arguments": frame(TEXT, b"431"),
    "connect with a string": frame(TEXT, b'40"token"'),
    "too many attachments": frame(TEXT, b"4599999999999-[]"),
}


def test_malformed_frames_close_their_socket_with_one_log_line_at_most(server, log_path, tracker):
    with Watch(server, log_path) as watch:
        still_open = []
        for name, data in MALFORMED_FRAMES.items():
            raw = RawSocket(server).open()
            raw.send(data)
            if not raw.closed(timeout=5):
                still_open.append(name)
            raw.close()
    survived(server, watch, tracker, refused_sockets=len(MALFORMED_FRAMES))
    assert not still_open, still_open


def test_malformed_websocket_handshakes_get_400_never_500(server, log_path, tracker):
    key, upgrade = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", ["Upgrade: websocket", "Connection: Upgrade"]
    handshakes = {
        "no key": [*upgrade, "Sec-WebSocket-Version: 13"],
        "no version": [*upgrade, key],
        "version 12": [*upgrade, key, "Sec-WebSocket-Version: 12"],
        "no Connection: Upgrade": ["Upgrade: websocket", key, "Sec-WebSocket-Version: 13"],
        "no Upgrade": ["Connection: Upgrade", key, "Sec-WebSocket-Version: 13"],
    }
    with Watch(server, log_path) as watch:
        statuses = {name: upgrade_status(server, headers) for name, headers in handshakes.items()}
        # an extension offer the server would trip on if it negotiated one: ignored
        garbled = upgrade_status(server, [*upgrade, key, "Sec-WebSocket-Version: 13",
                                          "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99"])
    survived(server, watch, tracker, refused_sockets=len(handshakes))
    assert statuses == dict.fromkeys(handshakes, 400)
    assert garbled == 101


# Long-polling


def test_long_polling_refuses_over_size_binary_and_malformed_posts(server, log_path, tracker):
    product_id = tracker[1]
    bodies = {
        "over size": f'42["track_inventory","{"a" * (40 * MiB)}"]',
        "just over": f'42["track_inventory","{"a" * LIMIT}"]',
        "base64 binary": "b" + base64.b64encode(b"\x01" * 1000).decode(),
        "binary event": '451-["track_inventory",{"_placeholder":true,"num":0}]',
        "binary event then attachment": '451-["track_inventory",{"_placeholder":true,"num":0}]\x1ebAQID',
        "invalid UTF-8": b'42["\xff"]',
        "not a packet": "x",
        "empty packet": "42\x1e\x1e42",
        "17 packets": "\x1e".join(["3"] * 17),
        "a ping from the client": "2",
        "a noop from the client": "6",
        "JSONP without data": "d=",
        "malformed event": "42[",
        "unnamed event": "42[1]",
    }
    with Watch(server, log_path) as watch:
        answers = {}
        for name, body in bodies.items():
            client = Polling(server)
            posted = client.post(body)
            answers[name] = (posted.status_code, client.closed())
            if posted.status_code >= 400:  # the API's error body, naming why
                error = posted.json()["error"]
                assert posted.json()["success"] is False and error["message"].startswith("Refused"), error
            client.close()
        fine = Polling(server)  # a normal event is answered over long-polling
        assert fine.post(f'421["track_inventory",{product_id}]').status_code == 200
        replies = ""
        for _ in range(3):  # the reply event, then the acknowledgement (one poll may hold both)
            if "431[" in replies:
                break
            replies += fine.get().text
        fine.close()
    survived(server, watch, tracker, refused_sockets=len(bodies))
    assert {name: answer for name, answer in answers.items() if answer[1] is not True or answer[0] >= 500} == {}
    assert answers["over size"][0] == 413 and answers["just over"][0] == 413 and answers["base64 binary"][0] == 400
    assert f'431[{{"productId":{product_id},"quantity":5}}]' in replies


# Fuzz

# Packets a client may send on either transport (some refused by the handlers, none closing the socket), then
# others only a server sends or that the checks refuse.
CLEAN = ["3", '42["track_inventory",1]', '421["track_inventory",{"productId":1}]', '422["untrack_inventory",1]',
         '42["authenticate","a.b.c"]', '423["track_order",{"orderId":"1"}]', '4312["x"]', '40/admin,',
         '42/admin,["x"]', '42["x",{"_placeholder":true,"num":0}]']
TEMPLATES = [*CLEAN, "2", "6", "1", "5", "40", "41", '40{"token":"x"}', '43[{"a":1}]',
             '451-["x",{"_placeholder":true,"num":0}]', "b" + "AAEC"]

mutated = st.builds(
    lambda template, at, cut, insert: template[:at % (len(template) + 1)] + insert
    + template[at % (len(template) + 1) + cut:],
    st.sampled_from(TEMPLATES), st.integers(0, 60), st.integers(0, 4),
    st.text(alphabet=st.sampled_from('[]{}",:0123456789-/abx\x1e\xff\\ ') | st.characters(), max_size=6))
json_event = st.builds(lambda args: "42" + json.dumps(args), st.lists(
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8), max_size=3))
packet = st.one_of(st.sampled_from(TEMPLATES), mutated, mutated, json_event, st.text(max_size=40),
                   st.binary(max_size=40))
ws_frame = st.one_of(
    packet.map(lambda p: frame(BINARY if isinstance(p, bytes) else TEXT, p if isinstance(p, bytes) else p.encode())),
    st.builds(lambda opcode, rsv, fin, payload: frame(opcode, payload, fin=fin, rsv=rsv),
              st.integers(0, 15), st.integers(0, 7), st.booleans(), st.binary(max_size=30)),
    st.binary(min_size=1, max_size=30))  # not even a frame
# A session: a transport, a few packets a client may send, then random and mutated ones (a frame for the websocket,
# a POST body for long-polling), until the server closes it.
session = st.tuples(st.sampled_from(["websocket", "polling"]), st.lists(st.sampled_from(CLEAN), max_size=20),
                    st.lists(st.tuples(ws_frame, packet), min_size=1, max_size=10))


def test_fuzzed_frames_over_both_transports_never_kill_or_bloat_the_worker(server, log_path, tracker):
    """Seeded (derandomize), 400 sessions, a few thousand frames, well under 60 s. Each session, even a refused one,
    costs engine.io some 12 kB for about 25 s after it closes (its ping task holds the socket), which the RSS bound
    allows for 400."""
    sent = {"frames": 0, "fuzzed": 0, "sessions": 0}  # frames delivered (the fuzzed ones: after the clean ones)
    statuses: list[int] = []

    @settings(derandomize=True, max_examples=400, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(session)
    def fuzz(example):
        transport, clean, fuzzed = example
        sent["sessions"] += 1
        if transport == "websocket":
            raw = RawSocket(server, timeout=5).open()
            for at, data in enumerate([frame(TEXT, text.encode()) for text in clean] + [data for data, _ in fuzzed]):
                if not raw.send(data):
                    break
                sent["frames"] += 1
                sent["fuzzed"] += at >= len(clean)
            raw.closed(timeout=0.05)
            raw.close()
        else:
            client = Polling(server)
            for at, body in enumerate(clean + [body for _data, body in fuzzed]):
                answer = client.post(body)
                sent["frames"] += 1
                sent["fuzzed"] += at >= len(clean)
                statuses.append(answer.status_code)
                if answer.status_code != 200:
                    break
            client.close()
        statuses.append(api(server, "GET", "/products").status_code)

    with Watch(server, log_path) as watch:
        started = time.monotonic()
        fuzz()
        took = time.monotonic() - started
    survived(server, watch, tracker, refused_sockets=sent["sessions"])
    assert sent["frames"] >= 2500 and sent["fuzzed"] >= 1000, sent  # 2,924 and 1,079 when written
    assert max(statuses) < 500, sorted(set(statuses))
    assert took < 60, f"the fuzz took {took:.0f} s"


# Threading mode


@pytest.fixture
def threaded(app) -> Iterator[SimpleNamespace]:  # noqa: F811
    """This test's app served in process by Werkzeug's threaded server: the threading async mode (the test process
    is not patched by gevent), which a `flask` command and a gthread worker use too."""
    assert realtime_of(app).async_mode == "threading"
    serving = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=serving.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(port=serving.server_port, url=f"http://127.0.0.1:{serving.server_port}")
    serving.shutdown()
    thread.join(timeout=5)


def test_the_bounds_hold_in_threading_mode(threaded):
    deflate = RawSocket(threaded, offer="permessage-deflate").open()
    assert "sec-websocket-extensions" not in deflate.headers
    deflate.send(frame(TEXT, deflated_event(10 * MiB), rsv=0b100))
    assert deflate.closed()
    over = RawSocket(threaded).open()
    over.stream(TEXT, 40 * MiB)
    assert over.closed() and over.close_code == 1009
    binary = RawSocket(threaded).open()
    binary.send_text('451-["x",{"_placeholder":true,"num":0}]')
    assert binary.closed()
    attachment = RawSocket(threaded).open()
    attachment.send(frame(BINARY, b"\x01" * 60_000))
    assert attachment.closed() and attachment.close_code == 1003
    fine = RawSocket(threaded).open()
    fine.send_text('421["untrack_inventory",7]')
    assert fine.next_text() in ('42["untracked",{"productId":7}]', '431[{"productId":7}]')
    for raw in (deflate, over, binary, attachment, fine):
        raw.close()
