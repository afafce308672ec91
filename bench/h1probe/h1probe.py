#!/usr/bin/env python3
"""h1probe: an HTTP/1.1 request-side compliance probe (RFC 9110, RFC 9112).

Sends about 190 hand-made requests, one connection each, to a server that is
already listening, and judges each answer: request-line and field syntax,
Host, Content-Length and Transfer-Encoding framing, chunked bodies, request
smuggling (ambiguous framing, with and without a request hidden in the
body), malformed and oversized input. Standard library only, raw sockets.

    h1probe.py [--host 198.18.0.1] [--port 80] [--json] [--timeout 5]
               [--static-body OK] [--only ID ...] [--require N]

The cases are the ones of the public Http11Probe suite (same identifiers, so
results compare line by line; see docs/HTTP.md), written here in our own
words, with the section each one checks, the bytes sent and the outcomes
accepted. Scoring follows that suite:

* Each case ends in pass, warn or fail (error: the connection could not be
  made). "Warn" is an outcome the RFC allows but the strict one is better
  (a MAY or SHOULD taken the lenient way, e.g. answering 200 to a bare LF).
* Scored cases count; unscored ones are shown and reported, never counted.
  The summary counts passes only: "passed X of N scored" (N every scored
  case, errors included), and "smuggling failures: K" the scored cases of
  the smuggling category that failed.
* What a case sees is the server's first response (status line and fields,
  what follows the head arriving within 100 ms after it), and the state of
  the connection 50 ms later: "closed" (FIN or RST), "open", or "timeout"
  (no complete head within --timeout seconds). "Close" in an expectation is
  the server closing without a response; for the cases whose expectation
  says "or close", a timeout counts as that too, as in the public suite.
* Cases whose body a server would echo accept the echo or a fixed body,
  --static-body (default `OK`: run a fixed-body server with that body).
* A sequence sends its steps on one connection, each after the answer to
  the one before; a step is not sent once the connection is closed.

Where this probe differs from the public one: a send that fails (the server
closed early on a 100 KB request) still reads the answer the server sent,
where the public suite reports an error and leaves the case out of its
count; MAL-BINARY-GARBAGE sends different random bytes (Python's generator).
"""

import argparse
import json
import random
import re
import select
import socket
import sys
import time

PASS, WARN, FAIL, ERROR = "pass", "warn", "fail", "error"
OPEN, CLOSED, TIMEOUT = "open", "closed", "timeout"


class Reply:
    """The first response in what was read: status, fields, body text."""

    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers  # lower-case name -> values joined by ", "
        self.body = body  # text after the first empty line (or None)
        self.raw = raw  # everything read, as text

    def has(self, name):
        return name.lower() in self.headers


def parse_reply(data):
    if not data:
        return None
    text = data.decode("latin-1")
    eol = text.find("\n")
    if eol < 0:
        return None
    parts = text[:eol].rstrip("\r").split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = {}
    for line in text[eol + 1 :].split("\n"):
        line = line.rstrip("\r")
        if not line:
            break
        name, colon, value = line.partition(":")
        if colon and name.strip():
            key = name.strip().lower()
            value = value.strip()
            headers[key] = headers[key] + ", " + value if key in headers else value
    end = text.find("\r\n\r\n")
    body = None
    if end >= 0 and end + 4 < len(text):
        body = text[end + 4 :][:4096]
    return Reply(int(parts[1]), headers, body, text)


class Conn:
    """One client connection, used the way the public suite uses its own."""

    def __init__(self, host, port, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, payload):
        """Sends `payload`, reads the answer: (Reply or None, state)."""
        try:
            self.sock.sendall(payload)
        except OSError:
            pass  # the server closed early: read what it said before
        buf = b""
        deadline = time.monotonic() + self.timeout
        state = OPEN
        while b"\r\n\r\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return parse_reply(buf), TIMEOUT
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return parse_reply(buf), TIMEOUT
            except OSError:
                return parse_reply(buf), CLOSED
            if not chunk:
                return parse_reply(buf), CLOSED
            buf += chunk
        # The rest of the response (and anything after it) that is already
        # on its way, then whether the server closed.
        time.sleep(0.1)
        while len(buf) < 65536 and self._readable(0):
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                state = CLOSED
                break
            if not chunk:
                state = CLOSED
                break
            buf += chunk
        if state == OPEN:
            time.sleep(0.05)
            state = self.check()
        return parse_reply(buf), state

    def _readable(self, wait):
        r, _, _ = select.select([self.sock], [], [], wait)
        return bool(r)

    def check(self):
        try:
            if self._readable(0):
                return CLOSED if self.sock.recv(1, socket.MSG_PEEK) == b"" else OPEN
            return OPEN
        except OSError:
            return CLOSED


class Step:
    def __init__(self, executed, reply=None, state=CLOSED):
        self.executed = executed
        self.reply = reply
        self.state = state

    @property
    def status(self):
        return self.reply.status if self.reply else None


# ---------------------------------------------------------------------------
# Judges. Each takes (reply, state) and returns a verdict; `code` tests a
# status against 400, "2xx" or a set.


def _is(status, code):
    if code == "2xx":
        return 200 <= status < 300
    return status == code


def _any(status, codes):
    return any(_is(status, c) for c in codes)


def exact(*codes, close=False):
    """One of `codes`; with close=True also no answer at all (closed or
    timed out): the public suite's plain expectation."""

    def judge(r, state):
        if r is None:
            return PASS if close else FAIL
        return PASS if _any(r.status, codes) else FAIL

    judge.expects = "/".join(map(str, codes)) + (" or close" if close else "")
    return judge


def refuse(*codes):
    """One of `codes` or a close without an answer (not a timeout)."""

    def judge(r, state):
        if r is None:
            return PASS if state == CLOSED else FAIL
        return PASS if _any(r.status, codes) else FAIL

    judge.expects = "/".join(map(str, codes)) + " or close"
    return judge


def strict(*codes):
    """The strict answer (`codes`, or a close) passes; 2xx, the lenient
    reading the RFC allows, warns."""

    def judge(r, state):
        if r is None:
            return PASS if state == CLOSED else FAIL
        if _any(r.status, codes):
            return PASS
        return WARN if _is(r.status, "2xx") else FAIL

    judge.expects = "/".join(map(str, codes)) + " or close (2xx warns)"
    return judge


def strict_close(*codes):
    """Like strict, but a 2xx must close the connection (framing that
    would be ambiguous elsewhere: RFC 9112 6.1), else fail."""

    def judge(r, state):
        if r is None:
            return PASS if state == CLOSED else FAIL
        if _any(r.status, codes):
            return PASS
        if _is(r.status, "2xx"):
            return WARN if state == CLOSED else FAIL
        return FAIL

    judge.expects = "/".join(map(str, codes)) + " or close (2xx+close warns)"
    return judge


def silent_or(*codes):
    """Waiting for more bytes (timeout) or closing is right; an answer must
    be one of `codes` (a server that answered 2xx used a request it never
    got whole)."""

    def judge(r, state):
        if r is not None:
            return PASS if _any(r.status, codes) else FAIL
        return PASS if state in (TIMEOUT, CLOSED) else FAIL

    judge.expects = "/".join(map(str, codes)) + ", close or wait"
    return judge


def not_101(r, state):
    """No protocol switch: anything but 101 (a close too)."""
    if r is None:
        return PASS if state == CLOSED else FAIL
    return FAIL if r.status == 101 else PASS


not_101.expects = "not 101"


def custom(expects, fn):
    fn.expects = expects
    return fn


def effective_body(r):
    body = r.body or ""
    if "chunked" in r.headers.get("transfer-encoding", "").lower():
        out, pos = [], 0
        while pos < len(body):
            eol = body.find("\r\n", pos)
            if eol < 0:
                break
            try:
                size = int(body[pos:eol].split(";")[0].strip(), 16)
            except ValueError:
                break
            if size == 0:
                break
            out.append(body[eol + 2 : eol + 2 + size])
            pos = eol + 2 + size + 2
        return "".join(out)
    return body.rstrip("\r\n")


STATIC = ["OK"]


def echo(expected):
    """2xx with the body sent echoed back, or the server's fixed body."""

    def judge(r, state):
        if r is None or not _is(r.status, "2xx"):
            return FAIL
        body = effective_body(r)
        return PASS if body in (expected, STATIC[0]) else FAIL

    judge.expects = "2xx + echo %r or the fixed body" % expected
    return judge


def no_normalizing(standard, odd, value, case_only=False):
    """For an echo server: a refusal passes; a 2xx that shows the odd field
    under the standard name (it was normalized into the real field) fails;
    kept under its own name warns; dropped passes."""

    def judge(r, state):
        if r is None:
            return PASS if state == CLOSED else FAIL
        if r.status >= 400:
            return PASS
        if not _is(r.status, "2xx"):
            return FAIL
        body = r.body or ""
        if ":" not in body:
            return PASS
        fields = []
        for line in body.split("\n"):
            name, colon, v = line.partition(":")
            if colon and name:
                fields.append((name, v.strip().rstrip("\r")))
        hits = [n for n, v in fields if v.lower() == value.lower()]
        if case_only:
            for n in hits:
                if n == odd:
                    return WARN
                if n.lower() == standard.lower():
                    return FAIL
            return PASS
        for n in hits:
            if n.lower() == standard.lower() and n.lower() != odd.lower():
                return FAIL
        for n in hits:
            if n.lower() == odd.lower():
                return WARN
        return PASS

    judge.expects = ">=400, or 2xx not showing %r as %r" % (odd, standard)
    return judge


# Sequence judges: take the list of Steps.


def closes_or_refuses(steps):
    """The ambiguous first request is refused (400) or the connection is
    closed after its answer (the follow-up never goes out)."""
    s1, s2 = steps[0], steps[1] if len(steps) > 1 else None
    if s1.status == 400:
        return PASS
    if not s1.executed or s1.state == CLOSED:
        return PASS
    if s1.status is not None and 200 <= s1.status < 300:
        return PASS if s2 is not None and not s2.executed else FAIL
    return FAIL


closes_or_refuses.expects = "400, or the connection closed"

STATUS_LINE = re.compile(r"HTTP/\d\.\d \d\d\d")


def one_response(steps):
    """A request hidden in the body must not be answered: two status lines
    in what came back fail; a 400 or a close passes; a 2xx on a connection
    left open fails (RFC 9112 6.1: close after ambiguous framing)."""
    s1 = steps[0]
    if s1.reply and len(STATUS_LINE.findall(s1.reply.raw)) >= 2:
        return FAIL
    if s1.status == 400:
        return PASS
    if not s1.executed or s1.state == CLOSED:
        return PASS
    return FAIL


one_response.expects = "400 or close, never a second response"


def unread_body(ok1=(400,), otherwise=FAIL):
    """A body the server may ignore must still be consumed: the follow-up
    gets its own clean answer (400 to it means the body was read as the
    start of the next request: warn)."""

    def judge(steps):
        s1, s2 = steps
        if s1.status in ok1:
            return PASS
        if not s1.executed or s1.state == CLOSED:
            return PASS
        if s1.status is not None and 200 <= s1.status < 300:
            if not s2.executed:
                return PASS
            if s2.status is not None and 200 <= s2.status < 300:
                return PASS
            return WARN
        return otherwise

    judge.expects = "/".join(map(str, ok1)) + ", close, or 2xx then a clean 2xx"
    return judge


def prefix_desync(steps):
    s1, s2 = steps
    if s1.status == 400:
        return PASS
    if not s1.executed or s1.state == CLOSED:
        return PASS
    if s1.status is not None and 200 <= s1.status < 300:
        if not s2.executed:
            return PASS
        if s2.reply and len(STATUS_LINE.findall(s2.reply.raw)) >= 2:
            return WARN
        if s2.status == 400 or (s2.status is not None and 200 <= s2.status < 300):
            return PASS
        return WARN
    return WARN


prefix_desync.expects = "400, close, or one answer per request"


def poison_byte(steps):
    s1, s2 = steps
    if s1.status == 400:
        return PASS
    if not s1.executed or s1.state == CLOSED:
        return PASS
    if s1.status is not None and 200 <= s1.status < 300:
        return PASS if not s2.executed else WARN
    return FAIL


poison_byte.expects = "400, close; a poisoned follow-up warns"


def pipeline_ok(steps):
    s1, s2 = steps
    if s1.status is None or not 200 <= s1.status < 300:
        return FAIL
    if not s2.executed:
        return WARN
    return PASS if s2.status is not None and 200 <= s2.status < 300 else WARN


pipeline_ok.expects = "2xx, 2xx"


# ---------------------------------------------------------------------------
# The cases. `{H}` in a request is the Host value (host, or host:port when the
# port is not 80). Requests are latin-1 text so that any byte can be written.

CASES = []


def case(cid, cat, ref, what, send, judge, scored=True):
    CASES.append(
        {
            "id": cid,
            "category": cat,
            "ref": ref,
            "what": what,
            "send": send if isinstance(send, list) else [send],
            "judge": judge,
            "scored": scored,
            "sequence": isinstance(send, list),
        }
    )


def get(extra="", target="/", version="HTTP/1.1", method="GET"):
    return "%s %s %s\r\nHost: {H}\r\n%s\r\n" % (method, target, version, extra)


def post(fields, body="", version="HTTP/1.1", method="POST"):
    return "%s / %s\r\nHost: {H}\r\n%s\r\n%s" % (method, version, fields, body)


def chunked(body):
    return post("Transfer-Encoding: chunked\r\n", body)


C, S, M, N = "compliance", "smuggling", "malformed", "normalization"

# --- Compliance --------------------------------------------------------------

case("COMP-BASELINE", C, "-", "a plain GET is answered (reachability)",
     get(), exact("2xx"))
case("RFC9112-2.2-BARE-LF-REQUEST-LINE", C, "9112 2.2",
     "request line ended by LF alone (a MAY to accept)",
     "GET / HTTP/1.1\nHost: {H}\r\n\r\n", strict(400))
case("RFC9112-2.2-BARE-LF-HEADER", C, "9112 2.2",
     "a field line ended by LF alone",
     "GET / HTTP/1.1\r\nHost: {H}\nX-Test: value\r\n\r\n", strict(400))
case("RFC9112-5.1-OBS-FOLD", C, "9112 5.2",
     "a field value continued on the next line (obs-fold) outside message/http",
     get("X-Test: value\r\n continued\r\n"), exact(400))
case("RFC9110-5.6.2-SP-BEFORE-COLON", C, "9112 5.1",
     "whitespace between a field name and its colon: MUST be 400",
     get("X-Test : value\r\n"), exact(400))
case("RFC9112-3-MULTI-SP-REQUEST-LINE", C, "9112 3",
     "two spaces between method and target",
     "GET  / HTTP/1.1\r\nHost: {H}\r\n\r\n", strict(400))
case("RFC9112-7.1-MISSING-HOST", C, "9112 3.2",
     "an HTTP/1.1 request without Host: MUST be 400",
     "GET / HTTP/1.1\r\n\r\n", exact(400))
case("RFC9112-2.3-INVALID-VERSION", C, "9112 2.3",
     "version HTTP/9.9", get(version="HTTP/9.9"), refuse(400, 505))
case("RFC9112-5-EMPTY-HEADER-NAME", C, "9112 5",
     "a field line starting with its colon (empty name)",
     get(": empty-name\r\n"), exact(400, close=True))
case("RFC9112-3-CR-ONLY-LINE-ENDING", C, "9112 2.2",
     "request line ended by CR alone",
     "GET / HTTP/1.1\rHost: {H}\r\n\r\n", exact(400))
case("RFC9112-3-MISSING-TARGET", C, "9112 3",
     "no request target (method, space, version)",
     "GET HTTP/1.1\r\nHost: {H}\r\n\r\n", exact(400, close=True))
case("RFC9112-3.2-FRAGMENT-IN-TARGET", C, "9112 3.2",
     "a #fragment in the target (not in origin-form)",
     get(target="/path#frag"), strict(400))
case("RFC9112-2.3-HTTP09-REQUEST", C, "9112 2.3",
     "an HTTP/0.9 request line (no version): refuse or wait, never serve",
     "GET /\r\n", silent_or(400))
case("RFC9112-5-INVALID-HEADER-NAME", C, "9112 5",
     "a field name with a non-token byte ([)",
     get("Bad[Name: value\r\n"), exact(400, close=True))
case("RFC9112-5-HEADER-NO-COLON", C, "9112 5",
     "a field line without a colon",
     get("NoColonHere\r\n"), exact(400, close=True))
case("RFC9110-5.4-DUPLICATE-HOST", C, "9112 3.2",
     "two Host fields that differ",
     get("Host: other.example.com\r\n"), exact(400))
case("RFC9112-6.1-CL-NON-NUMERIC", C, "9112 6.3",
     "Content-Length: abc", post("Content-Length: abc\r\n"), exact(400, close=True))
case("RFC9112-6.1-CL-PLUS-SIGN", C, "9112 6.3",
     "Content-Length: +5", post("Content-Length: +5\r\n", "hello"),
     exact(400, close=True))
case("COMP-WHITESPACE-BEFORE-HEADERS", C, "9112 2.2",
     "a whitespace line between the request line and the first field",
     "GET / HTTP/1.1\r\n \r\nHost: {H}\r\n\r\n", exact(400, close=True))
case("COMP-DUPLICATE-HOST-SAME", C, "9112 3.2",
     "Host sent twice with the same value",
     get("Host: {H}\r\n"), exact(400))
case("COMP-HOST-WITH-USERINFO", C, "9112 3.2",
     "Host: user@host (userinfo is not uri-host)",
     "GET / HTTP/1.1\r\nHost: user@{H}\r\n\r\n", exact(400, close=True))
case("COMP-HOST-WITH-PATH", C, "9112 3.2",
     "Host: host/path", "GET / HTTP/1.1\r\nHost: {H}/path\r\n\r\n",
     exact(400, close=True))
case("COMP-ASTERISK-WITH-GET", C, "9112 3.2.4",
     "GET * (the asterisk form is for OPTIONS only)",
     get(target="*"), exact(400, close=True))
case("COMP-OPTIONS-STAR", C, "9112 3.2.4",
     "OPTIONS * is served", get(target="*", method="OPTIONS"), exact("2xx"))
case("COMP-UNKNOWN-TE-501", C, "9112 6.1",
     "Transfer-Encoding: gzip alone (a coding not understood: 501)",
     post("Transfer-Encoding: gzip\r\n"), refuse(400, 501))
case("COMP-LEADING-CRLF", C, "9112 2.2",
     "empty lines before the request line (SHOULD be ignored: 2xx warns)",
     "\r\n\r\nGET / HTTP/1.1\r\nHost: {H}\r\n\r\n", strict(400))
case("COMP-ABSOLUTE-FORM", C, "9112 3.2.2",
     "absolute-form target http://host/ (a server MUST accept it)",
     get(target="http://{H}/"),
     custom("2xx (400 warns)", lambda r, s: (WARN if s == CLOSED else FAIL) if r is None
            else PASS if _is(r.status, "2xx") else WARN if r.status == 400 else FAIL),
     scored=False)
case("COMP-METHOD-CASE", C, "9110 9.1",
     "lower-case method `get` (methods are case-sensitive: unknown)",
     "get / HTTP/1.1\r\nHost: {H}\r\n\r\n", strict(400, 405, 501))
case("COMP-POST-CL-BODY", C, "9112 6.2",
     "POST with a 5-byte Content-Length body",
     post("Content-Length: 5\r\n", "hello"), echo("hello"))
case("COMP-POST-CL-ZERO", C, "9112 6.2",
     "POST with Content-Length: 0", post("Content-Length: 0\r\n"),
     exact("2xx", close=True))
case("COMP-POST-NO-CL-NO-TE", C, "9112 6.3",
     "POST without framing fields (a body of length 0)", post(""),
     exact("2xx", close=True))
case("COMP-POST-CL-UNDERSEND", C, "9112 6.2",
     "Content-Length: 10 with 5 bytes sent: wait for the rest, never serve",
     post("Content-Length: 10\r\n", "hello"), silent_or(400))
case("COMP-CHUNKED-BODY", C, "9112 7.1",
     "a chunked body, one chunk", chunked("5\r\nhello\r\n0\r\n\r\n"), echo("hello"))
case("COMP-CHUNKED-MULTI", C, "9112 7.1",
     "a chunked body, two chunks",
     chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), echo("hello world"))
case("COMP-CHUNKED-EMPTY", C, "9112 7.1",
     "a chunked body with only its last chunk", chunked("0\r\n\r\n"),
     exact("2xx", close=True))
case("COMP-CHUNKED-NO-FINAL", C, "9112 7.1",
     "a chunked body never finished: wait or refuse, never serve",
     chunked("5\r\nhello\r\n"), silent_or(400))
case("COMP-UPGRADE-POST", C, "RFC 6455 4.1",
     "a WebSocket upgrade asked by POST", post(
         "Connection: Upgrade\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"),
     not_101)
case("COMP-UPGRADE-MISSING-CONN", C, "9110 7.8",
     "Upgrade without `Connection: upgrade`", get(
         "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\n"), not_101)
case("COMP-UPGRADE-UNKNOWN", C, "9110 7.8",
     "an upgrade to a protocol nobody knows",
     get("Connection: Upgrade\r\nUpgrade: totally-made-up/1.0\r\n"), not_101)
case("COMP-METHOD-CONNECT", C, "9110 9.3.6",
     "CONNECT to an origin server (not a proxy)",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     refuse(400, 405, 501))
case("COMP-EXPECT-UNKNOWN", C, "9110 10.1.1",
     "Expect: 200-ok (MAY be refused with 417; 2xx warns)",
     get("Expect: 200-ok\r\n"), strict(417))
case("COMP-GET-WITH-CL-BODY", C, "9110 9.3.1",
     "GET with a body (allowed, unusual)", get("Content-Length: 5\r\n") + "hello",
     custom("400 (2xx warns)", lambda r, s: (PASS if s == CLOSED else FAIL) if r is None
            else PASS if r.status == 400 else WARN), scored=False)
case("COMP-CHUNKED-EXTENSION", C, "9112 7.1.1",
     "a chunk extension `;ext=value` (valid: should be accepted)",
     chunked("5;ext=value\r\nhello\r\n0\r\n\r\n"),
     custom("2xx + echo (400 warns)", lambda r, s: (WARN if s == CLOSED else FAIL)
            if r is None else WARN if r.status == 400 else
            (PASS if effective_body(r) in ("hello", STATIC[0]) else FAIL)
            if _is(r.status, "2xx") else FAIL))
case("COMP-UPGRADE-INVALID-VER", C, "RFC 6455 4.4",
     "a WebSocket upgrade with version 99 (426 best; 2xx warns)", get(
         "Connection: Upgrade\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n"),
     custom("not 101 (426 best, 2xx warns)", lambda r, s: (PASS if s == CLOSED else FAIL)
            if r is None else FAIL if r.status == 101 else WARN
            if _is(r.status, "2xx") else PASS))
case("COMP-METHOD-TRACE", C, "9110 9.3.8",
     "TRACE (better disabled)", get(method="TRACE"), strict(405, 501), scored=False)
case("COMP-HOST-EMPTY-VALUE", C, "9112 3.2",
     "an empty Host in a request with an origin-form target",
     "GET / HTTP/1.1\r\nHost: \r\n\r\n", exact(400, close=True))
case("COMP-REQUEST-LINE-TAB", C, "9112 3",
     "a tab between method and target", "GET\t/ HTTP/1.1\r\nHost: {H}\r\n\r\n",
     strict(400))
case("COMP-VERSION-MISSING-MINOR", C, "9112 2.3",
     "version HTTP/1 (no minor digit)", get(version="HTTP/1"), exact(400, close=True))
case("COMP-VERSION-LEADING-ZEROS", C, "9112 2.3",
     "version HTTP/01.01", get(version="HTTP/01.01"), exact(400, close=True))
case("COMP-VERSION-WHITESPACE", C, "9112 2.3",
     "version `HTTP/ 1.1`", get(version="HTTP/ 1.1"), exact(400, close=True))
case("COMP-CONNECTION-CLOSE", C, "9112 9.6",
     "Connection: close: answer, then close", get("Connection: close\r\n"),
     custom("2xx and closed", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if s == CLOSED else FAIL))
case("COMP-HTTP10-DEFAULT-CLOSE", C, "9112 9.3",
     "HTTP/1.0 without keep-alive: close after the answer (open warns)",
     get(version="HTTP/1.0"),
     custom("2xx and closed", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if s == CLOSED else WARN))
case("COMP-HTTP10-NO-HOST", C, "9112 3.2",
     "HTTP/1.0 without Host (valid in 1.0)", "GET / HTTP/1.0\r\n\r\n",
     strict(400), scored=False)
case("COMP-HTTP12-VERSION", C, "9112 2.3",
     "HTTP/1.2 (a later 1.x minor: served as 1.1, or 505)", get(version="HTTP/1.2"),
     custom("2xx or 505 (both warn)", lambda r, s: (PASS if s == CLOSED else FAIL)
            if r is None else WARN if _is(r.status, "2xx") or r.status == 505 else FAIL),
     scored=False)
case("COMP-TRACE-WITH-BODY", C, "9110 9.3.8",
     "TRACE with a body", post("Content-Length: 5\r\n", "hello", method="TRACE"),
     strict(400, 405, 501), scored=False)
case("COMP-CHUNKED-TRAILER-VALID", C, "9112 7.1.2",
     "a chunked body with a trailer field",
     chunked("5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"), echo("hello"))
case("COMP-CHUNKED-HEX-UPPERCASE", C, "9112 7.1",
     "chunk size in upper-case hex (A)", chunked("A\r\nhelloworld\r\n0\r\n\r\n"),
     echo("helloworld"))
case("COMP-RANGE-POST", C, "9110 14.2",
     "Range on POST is ignored (never 206)",
     post("Content-Length: 5\r\nRange: bytes=0-10\r\n", "hello"),
     custom("2xx, not 206", lambda r, s: FAIL if r is None or r.status == 206
            else PASS if _is(r.status, "2xx") else FAIL))
case("COMP-UPGRADE-HTTP10", C, "9110 7.8",
     "an upgrade asked in HTTP/1.0 (must be ignored)", get(
         "Connection: Upgrade\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
         version="HTTP/1.0"), not_101)
case("COMP-HEAD-NO-BODY", C, "9110 9.3.2",
     "HEAD: the answer has no body", get(method="HEAD"),
     custom("2xx, no body", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if not r.body else FAIL))
case("COMP-UNKNOWN-METHOD", C, "9110 9.1",
     "an unknown method FOOBAR (501)", get(method="FOOBAR"), strict(501, 405, 400))
case("COMP-405-ALLOW", C, "9110 15.5.6",
     "a 405 carries Allow (another status warns: not checkable)",
     get(method="DELETE"), custom("405 with Allow", lambda r, s: FAIL if r is None
                                  else (PASS if r.has("allow") else FAIL)
                                  if r.status == 405 else WARN))
case("COMP-DATE-HEADER", C, "9110 6.6.1",
     "an origin server's 2xx carries Date", get(),
     custom("2xx with Date", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if r.has("date") else FAIL))
IMF = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                 r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
case("COMP-DATE-FORMAT", C, "9110 5.6.7",
     "Date in IMF-fixdate", get(),
     custom("IMF-fixdate", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if IMF.match(r.headers.get("date", "")) else WARN), scored=False)
case("COMP-NO-1XX-HTTP10", C, "9110 15.2",
     "no 1xx to an HTTP/1.0 client (Expect: 100-continue sent)", post(
         "Expect: 100-continue\r\nContent-Length: 5\r\n", "hello", version="HTTP/1.0"),
     custom("not 1xx", lambda r, s: (PASS if s in (CLOSED, TIMEOUT) else FAIL)
            if r is None else FAIL if 100 <= r.status < 200 else PASS))
case("COMP-NO-CL-IN-204", C, "9110 8.6",
     "a 204 has no Content-Length (OPTIONS /; another status warns)",
     get(method="OPTIONS"), custom("204 without Content-Length", lambda r, s: FAIL
                                   if r is None else (FAIL if r.has("content-length")
                                                      else PASS) if r.status == 204 else WARN))
case("COMP-OPTIONS-ALLOW", C, "9110 9.3.7",
     "OPTIONS / answers with Allow (missing warns)", get(method="OPTIONS"),
     custom("2xx with Allow", lambda r, s: FAIL if r is None or not _is(r.status, "2xx")
            else PASS if r.has("allow") else WARN))
case("COMP-CONTENT-TYPE", C, "9110 8.3",
     "a 2xx with content has Content-Type (missing warns)", get(),
     custom("2xx with Content-Type", lambda r, s: FAIL if r is None
            or not _is(r.status, "2xx") else PASS if r.has("content-type") else WARN))
case("COMP-VERSION-CASE", C, "9112 2.3",
     "version in lower case: http/1.1", get(version="http/1.1"), exact(400, close=True))
case("COMP-LONG-URL-OK", C, "9112 3",
     "an 8,000-byte request line is taken (SHOULD: at least 8,000 octets)",
     get(target="/" + "a" * 7900), custom("not 414", lambda r, s: (WARN if s == CLOSED
                                                                   else FAIL) if r is None
                                         else FAIL if r.status == 414 else PASS))
case("COMP-SPACE-IN-TARGET", C, "9112 3.2",
     "a space inside the target", get(target="/pa th"), exact(400, close=True))
case("COMP-DUPLICATE-CT", C, "9110 5.3",
     "two different Content-Type fields (2xx warns)", post(
         "Content-Length: 5\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n",
         "hello"), strict(400))
case("COMP-TRACE-SENSITIVE", C, "9110 9.3.8",
     "TRACE must not echo credentials", get(
         "Authorization: Bearer secret-token-123\r\n", method="TRACE"),
     custom("405/501, or 2xx without the credentials", lambda r, s: (PASS if s == CLOSED
                                                                     else FAIL) if r is None
            else PASS if r.status in (405, 501) else (WARN if "secret-token-123" in
                                                      (r.body or "") else PASS)
            if _is(r.status, "2xx") else FAIL), scored=False)
case("COMP-RANGE-INVALID", C, "9110 14.2",
     "Range: bytes=abc-xyz is ignored", get("Range: bytes=abc-xyz\r\n"),
     custom("200 or 416", lambda r, s: (WARN if s == CLOSED else FAIL) if r is None
            else PASS if (_is(r.status, "2xx") and r.status != 206) or r.status == 416
            else WARN), scored=False)
case("COMP-ACCEPT-NONSENSE", C, "9110 12.5.1",
     "Accept: application/x-nonsense (406 or the default representation)",
     get("Accept: application/x-nonsense\r\n"),
     custom("406 (2xx warns)", lambda r, s: (WARN if s == CLOSED else FAIL) if r is None
            else PASS if r.status == 406 else WARN if _is(r.status, "2xx") else FAIL),
     scored=False)
case("COMP-POST-UNSUPPORTED-CT", C, "9110 15.5.16",
     "POST with an unknown Content-Type (415 or 2xx)", post(
         "Content-Length: 5\r\nContent-Type: application/x-nonsense\r\n", "hello"),
     custom("415 or 2xx", lambda r, s: (WARN if s == CLOSED else FAIL) if r is None
            else PASS if r.status == 415 or _is(r.status, "2xx") else WARN), scored=False)

# --- Smuggling: one request --------------------------------------------------

CL5 = "Content-Length: 5\r\n"
case("SMUG-CL-TE-BOTH", S, "9112 6.1",
     "Content-Length and chunked together (MAY refuse; MUST close after)",
     post("Content-Length: 23\r\nTransfer-Encoding: chunked\r\n",
          "D\r\nhello-bananas\r\n0\r\n\r\n"), strict(400))
case("SMUG-DUPLICATE-CL", S, "9110 8.6",
     "two Content-Length fields that differ (5 and 10)",
     post("Content-Length: 5\r\nContent-Length: 10\r\n", "helloworld"),
     exact(400, close=True))
case("SMUG-CL-LEADING-ZEROS", S, "9110 8.6",
     "Content-Length: 005 (valid digits; read as octal by some)",
     post("Content-Length: 005\r\n", "hello"), strict(400))
case("SMUG-TE-XCHUNKED", S, "9112 6.1",
     "Transfer-Encoding: xchunked with Content-Length (not chunked)",
     post("Transfer-Encoding: xchunked\r\n" + CL5, "hello"), refuse(400, 501))
case("SMUG-TE-TRAILING-SPACE", S, "9112 6.1",
     "Transfer-Encoding: `chunked ` with Content-Length",
     post("Transfer-Encoding: chunked \r\n" + CL5, "hello"), strict_close(400, 501))
case("SMUG-TE-SP-BEFORE-COLON", S, "9112 5.1",
     "`Transfer-Encoding : chunked` with Content-Length",
     post("Transfer-Encoding : chunked\r\n" + CL5, "hello"), exact(400, close=True))
case("SMUG-CL-NEGATIVE", S, "9110 8.6",
     "Content-Length: -1", post("Content-Length: -1\r\n"), exact(400, close=True))
AMBIG = custom("400 or close (2xx warns)", lambda r, s: PASS if r is not None and r.status == 400
               else PASS if s == CLOSED else WARN if r is not None and _is(r.status, "2xx")
               else FAIL)
case("SMUG-CLTE-PIPELINE", S, "9112 6.1",
     "Content-Length: 4 with chunked `0` (the lengths disagree)",
     post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), AMBIG)
case("SMUG-TECL-PIPELINE", S, "9112 6.1",
     "chunked with Content-Length: 30 (the lengths disagree)",
     post("Transfer-Encoding: chunked\r\nContent-Length: 30\r\n", "0\r\n\r\n"), AMBIG)
case("SMUG-CL-TRAILING-SPACE", S, "9110 5.5",
     "`Content-Length: 5 ` (trailing OWS, valid)",
     post("Content-Length: 5 \r\n", "hello"), strict(400))
case("SMUG-TE-DOUBLE-CHUNKED", S, "9112 6.1",
     "Transfer-Encoding: chunked, chunked with Content-Length",
     post("Transfer-Encoding: chunked, chunked\r\n" + CL5, "hello"), strict(400))
case("SMUG-CL-EXTRA-LEADING-SP", S, "9110 5.5",
     "`Content-Length:  5` (two spaces of OWS, valid)",
     post("Content-Length:  5\r\n", "hello"), strict(400))
case("SMUG-TE-CASE-MISMATCH", S, "9112 6.1",
     "Transfer-Encoding: Chunked with Content-Length",
     post("Transfer-Encoding: Chunked\r\n" + CL5, "hello"), strict(400))
case("SMUG-CL-COMMA-DIFFERENT", S, "9110 8.6",
     "Content-Length: 5, 10", post("Content-Length: 5, 10\r\n", "hello"),
     exact(400, close=True))
case("SMUG-TE-NOT-FINAL-CHUNKED", S, "9112 6.3",
     "Transfer-Encoding: chunked, gzip (chunked not last: MUST 400)",
     post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), exact(400, close=True))
case("SMUG-TE-HTTP10", S, "9112 6.1",
     "Transfer-Encoding in an HTTP/1.0 request",
     post("Transfer-Encoding: chunked\r\n" + CL5, "hello", version="HTTP/1.0"),
     exact(400, close=True))
case("SMUG-CHUNK-BARE-SEMICOLON", S, "9112 7.1.1",
     "chunk size `5;` (an extension without a name)",
     chunked("5;\r\nhello\r\n0\r\n\r\n"), exact(400, close=True))
case("SMUG-CHUNK-EXT-INVALID-TOKEN", S, "9112 7.1.1",
     "chunk extension name with `[`", chunked("5;bad[=x\r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-BARE-CR-HEADER-VALUE", S, "9112 2.2",
     "a bare CR inside a field value",
     post(CL5 + "X-Test: val\rue\r\n", "hello"), exact(400, close=True))
case("SMUG-CL-OCTAL", S, "9110 8.6",
     "Content-Length: 0o5", post("Content-Length: 0o5\r\n", "hello"), exact(400, close=True))
case("SMUG-CHUNK-UNDERSCORE", S, "9112 7.1",
     "chunk size 1_0", chunked("1_0\r\nhello world!!!!!\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-TE-EMPTY-VALUE", S, "9112 6.1",
     "an empty Transfer-Encoding with Content-Length",
     post("Transfer-Encoding: \r\n" + CL5, "hello"), exact(400, close=True))
case("SMUG-TE-LEADING-COMMA", S, "9110 5.6.1",
     "Transfer-Encoding: , chunked with Content-Length",
     post("Transfer-Encoding: , chunked\r\n" + CL5, "hello"), strict(400))
case("SMUG-TE-DUPLICATE-HEADERS", S, "9112 6.1",
     "Transfer-Encoding chunked, then identity, with Content-Length",
     post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n" + CL5, "hello"),
     exact(400, close=True))
case("SMUG-CHUNK-HEX-PREFIX", S, "9112 7.1",
     "chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n"), exact(400, close=True))
case("SMUG-CHUNK-SIZE-PLUS", S, "9112 7.1",
     "chunk size +5", chunked("+5\r\nhello\r\n0\r\n\r\n"), exact(400, close=True))
case("SMUG-CHUNK-SIZE-TRAILING-OWS", S, "9112 7.1",
     "chunk size followed by a space", chunked("5 \r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-CL-HEX-PREFIX", S, "9110 8.6",
     "Content-Length: 0x5", post("Content-Length: 0x5\r\n", "hello"), exact(400, close=True))
case("SMUG-CL-INTERNAL-SPACE", S, "9110 8.6",
     "Content-Length: 1 0", post("Content-Length: 1 0\r\n", "hello12345"),
     exact(400, close=True))
case("SMUG-CHUNK-LEADING-SP", S, "9112 7.1",
     "chunk size preceded by a space", chunked(" 5\r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-CHUNK-MISSING-TRAILING-CRLF", S, "9112 7.1",
     "chunk data not followed by CRLF", chunked("5\r\nhello0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-CHUNK-EXT-LF", S, "9112 7.1.1",
     "chunk line `5;` ended by LF alone", chunked("5;\nhello\r\n0\r\n\r\n"), strict(400))
case("SMUG-CHUNK-SPILL", S, "9112 7.1",
     "chunk size 5 with 7 bytes of data", chunked("5\r\nhello!!\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-CHUNK-LF-TERM", S, "9112 7.1",
     "chunk data ended by LF alone", chunked("5\r\nhello\n0\r\n\r\n"), strict(400))
case("SMUG-CHUNK-EXT-CTRL", S, "9112 7.1.1",
     "a NUL in a chunk extension", chunked("5;\x00ext\r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-CHUNK-EXT-CR", S, "9112 7.1.1",
     "a bare CR in a chunk extension", chunked("5;a\rX\r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-TE-VTAB", S, "9112 6.1",
     "a vertical tab before `chunked`, with Content-Length",
     post("Transfer-Encoding: \x0bchunked\r\n" + CL5, "hello"), exact(400, close=True))
case("SMUG-TE-FORMFEED", S, "9112 6.1",
     "a form feed before `chunked`, with Content-Length",
     post("Transfer-Encoding: \x0cchunked\r\n" + CL5, "hello"), exact(400, close=True))
case("SMUG-TE-NULL", S, "9112 6.1",
     "a NUL after `chunked`, with Content-Length",
     post("Transfer-Encoding: chunked\x00\r\n" + CL5, "hello"), exact(400, close=True))
case("SMUG-CHUNK-LF-TRAILER", S, "9112 7.1",
     "the chunked body's last line ended by LF alone",
     chunked("5\r\nhello\r\n0\r\n\n"), strict(400))
case("SMUG-TE-IDENTITY", S, "9112 7",
     "Transfer-Encoding: identity (no such coding any more) with Content-Length",
     post("Transfer-Encoding: identity\r\n" + CL5, "hello"), refuse(400, 501))
case("SMUG-CHUNK-NEGATIVE", S, "9112 7.1",
     "chunk size -1", chunked("-1\r\nhello\r\n0\r\n\r\n"), exact(400, close=True))
case("SMUG-TRANSFER_ENCODING", S, "9112 6.1",
     "Transfer_Encoding (underscore) with Content-Length",
     post("Transfer_Encoding: chunked\r\n" + CL5, "hello"), strict(400), scored=False)
case("SMUG-CL-COMMA-SAME", S, "9110 8.6",
     "Content-Length: 5, 5 (one length, listed twice)",
     post("Content-Length: 5, 5\r\n", "hello"), strict(400), scored=False)
case("SMUG-CL-COMMA-TRIPLE", S, "9110 8.6",
     "Content-Length: 5, 5, 5", post("Content-Length: 5, 5, 5\r\n", "hello"),
     strict(400), scored=False)
case("SMUG-CHUNKED-WITH-PARAMS", S, "9112 7",
     "Transfer-Encoding: chunked;ext=val with Content-Length",
     post("Transfer-Encoding: chunked;ext=val\r\n" + CL5, "hello"), strict(400),
     scored=False)
case("SMUG-EXPECT-100-CL", S, "9110 10.1.1",
     "Expect: 100-continue with the body sent at once",
     post(CL5 + "Expect: 100-continue\r\n", "hello"), strict(400), scored=False)
for name, field in [("CL", "Content-Length: 50"), ("TE", "Transfer-Encoding: chunked"),
                    ("HOST", "Host: evil.example.com"), ("AUTH", "Authorization: Bearer evil")]:
    case("SMUG-TRAILER-" + name, S, "9110 6.5.1",
         "a trailer field that must not be used as a header: " + field,
         chunked("5\r\nhello\r\n0\r\n%s\r\n\r\n" % field), strict(400), scored=False)
case("SMUG-HEAD-CL-BODY", S, "9110 9.3.2",
     "HEAD with a body", post(CL5, "hello", method="HEAD"), strict(400), scored=False)
case("SMUG-OPTIONS-CL-BODY", S, "9110 9.3.7",
     "OPTIONS with a body", post(CL5, "hello", method="OPTIONS"), strict(400), scored=False)
case("SMUG-CL-UNDERSCORE", S, "9110 8.6",
     "Content-Length: 1_0", post("Content-Length: 1_0\r\n", "helloworld"),
     exact(400, close=True))
case("SMUG-CL-NEGATIVE-ZERO", S, "9110 8.6",
     "Content-Length: -0", post("Content-Length: -0\r\n"), exact(400, close=True))
case("SMUG-CL-DOUBLE-ZERO", S, "9110 8.6",
     "Content-Length: 00", post("Content-Length: 00\r\n"), strict(400))
case("SMUG-CL-LEADING-ZEROS-OCTAL", S, "9110 8.6",
     "Content-Length: 0200 (128 in octal) with 200 bytes",
     post("Content-Length: 0200\r\n", "A" * 200), strict(400))
case("SMUG-TE-OBS-FOLD", S, "9112 5.2",
     "Transfer-Encoding folded onto a second line, with Content-Length",
     post("Transfer-Encoding:\r\n chunked\r\n" + CL5, "hello"), strict_close(400))
case("SMUG-TE-TRAILING-COMMA", S, "9110 5.6.1",
     "Transfer-Encoding: chunked, (empty last element) with Content-Length",
     post("Transfer-Encoding: chunked,\r\n" + CL5, "hello"), strict(400))
case("SMUG-TE-TAB-BEFORE-VALUE", S, "9110 5.5",
     "a tab as OWS before `chunked`, with Content-Length",
     post("Transfer-Encoding:\tchunked\r\n" + CL5, "hello"), strict(400), scored=False)
case("SMUG-ABSOLUTE-URI-HOST-MISMATCH", S, "9112 3.2.2",
     "absolute-form target naming another host than Host",
     get(target="http://other.example.com/"), strict(400), scored=False)
case("SMUG-MULTIPLE-HOST-COMMA", S, "9110 7.2",
     "Host: host, other (two hosts in one field)",
     "GET / HTTP/1.1\r\nHost: {H}, other.example.com\r\n\r\n", exact(400, close=True))
case("SMUG-CHUNK-BARE-CR-TERM", S, "9112 2.2",
     "chunk size line ended by CR alone", chunked("5\rhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("SMUG-TRAILER-CONTENT-TYPE", S, "9110 6.5.1",
     "Content-Type as a trailer field",
     chunked("5\r\nhello\r\n0\r\nContent-Type: text/evil\r\n\r\n"), strict(400),
     scored=False)

# --- Smuggling: sequences on one connection ----------------------------------

FOLLOW = get()
case("SMUG-CLTE-CONN-CLOSE", S, "9112 6.1",
     "CL+TE: refused, or the connection closed after the answer",
     [post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), FOLLOW],
     closes_or_refuses)
case("SMUG-TECL-CONN-CLOSE", S, "9112 6.1",
     "TE+CL (the other order): refused, or closed after the answer",
     [post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), FOLLOW],
     closes_or_refuses)
case("SMUG-CLTE-DESYNC", S, "9112 6.1",
     "CL 6 and chunked `0` plus one extra byte, then a GET",
     [post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nX"), FOLLOW],
     closes_or_refuses)
HIDDEN = "GET / HTTP/1.1\r\nHost: {H}\r\n\r\n"
for cid, ref, what, fields, inner in [
    ("SMUG-CLTE-SMUGGLED-GET", "9112 6.1", "CL+TE with a GET after the last chunk",
     "Content-Length: {LEN}\r\nTransfer-Encoding: chunked\r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-GET-CL-PLUS", "9112 6.1", "as above, Content-Length: +N",
     "Content-Length: +{LEN}\r\nTransfer-Encoding: chunked\r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-GET-CL-NON-NUMERIC", "9112 6.1", "as above, Content-Length: Nx",
     "Content-Length: {LEN}x\r\nTransfer-Encoding: chunked\r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-GET-TE-OBS-FOLD", "9112 5.2", "as above, Transfer-Encoding folded",
     "Transfer-Encoding:\r\n chunked\r\nContent-Length: {LEN}\r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-HEAD", "9112 6.1", "CL+TE with a HEAD after the last chunk",
     "Content-Length: {LEN}\r\nTransfer-Encoding: chunked\r\n",
     "HEAD / HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("SMUG-CLTE-SMUGGLED-GET-TE-TRAILING-SPACE", "9112 6.1", "as above, `chunked `",
     "Content-Length: {LEN}\r\nTransfer-Encoding: chunked \r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-GET-TE-LEADING-COMMA", "9112 6.1", "as above, `, chunked`",
     "Content-Length: {LEN}\r\nTransfer-Encoding: , chunked\r\n", HIDDEN),
    ("SMUG-CLTE-SMUGGLED-GET-TE-CASE-MISMATCH", "9112 6.1", "as above, `Chunked`",
     "Content-Length: {LEN}\r\nTransfer-Encoding: Chunked\r\n", HIDDEN),
    ("SMUG-TE-DUPLICATE-HEADERS-SMUGGLED-GET", "9112 6.1",
     "two Transfer-Encoding fields and CL, a GET after the last chunk",
     "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {LEN}\r\n",
     HIDDEN),
]:
    case(cid, S, ref, what + ": at most one answer", [("HIDDEN", fields, "0\r\n\r\n" + inner)],
         one_response)
SMALL = "GET / HTTP/1.1\r\nHost: {H}\r\nContent-Length: 7\r\n\r\n"
case("SMUG-TECL-SMUGGLED-GET", S, "9112 6.1",
     "chunked with a CL covering only the size line; the chunk is a GET",
     [("TECL", SMALL)], one_response)
case("SMUG-DUPLICATE-CL-SMUGGLED-GET", S, "9110 8.6",
     "Content-Length 4 and N; after 4 bytes a GET",
     [("HIDDEN", "Content-Length: 4\r\nContent-Length: {LEN}\r\n", "PING" + HIDDEN)],
     one_response)
PREFIX = "GET / HTTP/1.1\r\nHost: {H}\r\n"
case("SMUG-GET-CL-PREFIX-DESYNC", S, "9110 9.3.1",
     "GET whose body is the start of a request; the next write completes it",
     [("HIDDEN", "", PREFIX, "GET"), "\r\n" + get()], prefix_desync, scored=False)
case("SMUG-TECL-DESYNC", S, "9112 6.1",
     "chunked `0` with CL 30 and an extra byte, then a GET",
     [post("Transfer-Encoding: chunked\r\nContent-Length: 30\r\n", "0\r\n\r\nX"), FOLLOW],
     closes_or_refuses)
case("SMUG-CL0-BODY-POISON", S, "9112 6.2",
     "Content-Length: 0 followed by a stray byte, then a GET",
     [post("Content-Length: 0\r\n", "X"), FOLLOW], poison_byte, scored=False)
case("SMUG-GET-CL-BODY-DESYNC", S, "9110 9.3.1",
     "GET with a body, then a GET: the body is consumed",
     [get(CL5) + "hello", FOLLOW], unread_body(), scored=False)
case("SMUG-OPTIONS-CL-BODY-DESYNC", S, "9110 9.3.7",
     "OPTIONS with a body, then a GET: the body is consumed",
     [post(CL5, "hello", method="OPTIONS"), FOLLOW], unread_body(), scored=False)
case("SMUG-EXPECT-100-CL-DESYNC", S, "9110 10.1.1",
     "Expect: 100-continue with the body at once, then a GET",
     [post(CL5 + "Expect: 100-continue\r\n", "hello"), FOLLOW],
     unread_body((400, 417), WARN), scored=False)
case("SMUG-OPTIONS-TE-OBS-FOLD", S, "9112 5.2",
     "OPTIONS with a folded Transfer-Encoding and CL, then a GET",
     [post("Transfer-Encoding:\r\n chunked\r\n" + CL5, "hello", method="OPTIONS"), FOLLOW],
     closes_or_refuses)
case("SMUG-CHUNK-INVALID-SIZE-DESYNC", S, "9112 7.1",
     "chunk size +0 and a stray byte, then a GET",
     [chunked("+0\r\n\r\nX"), FOLLOW], closes_or_refuses)
case("SMUG-PIPELINE-SAFE", S, "9112 9.3",
     "two plain GETs on one connection (the baseline of the sequences)",
     [get(), get()], pipeline_ok, scored=False)

# --- Malformed input ---------------------------------------------------------

GARBAGE = bytes(random.Random(42).getrandbits(8) for _ in range(256))
case("MAL-BINARY-GARBAGE", M, "9112 2.2",
     "256 random bytes", GARBAGE, silent_or(400))
case("MAL-LONG-URL", M, "9112 3",
     "a 100,000-byte target (414 best)", get(target="/" + "A" * 100000),
     refuse(400, 414, 431))
case("MAL-LONG-HEADER-VALUE", M, "9110 5.5",
     "a 100,000-byte field value", get("X-Big: %s\r\n" % ("B" * 100000)), refuse(400, 431))
case("MAL-MANY-HEADERS", M, "RFC 6585 5",
     "10,000 field lines", get("".join("X-H-%d: value\r\n" % i for i in range(10000))),
     refuse(400, 431))
case("MAL-NUL-IN-URL", M, "9112 3.2",
     "a NUL in the target", get(target="/\x00test"), exact(400, close=True))
case("MAL-CONTROL-CHARS-HEADER", M, "9110 5.5",
     "BEL, BS and VT in a field value", get("X-Test: abc\x07\x08\x0bdef\r\n"),
     exact(400, close=True))
case("MAL-INCOMPLETE-REQUEST", M, "9112 2",
     "a head that never ends: wait or refuse",
     "GET / HTTP/1.1\r\nHost: {H}\r\nX-Test: value", silent_or(400))
case("MAL-EMPTY-REQUEST", M, "9112 2",
     "a connection that sends nothing", b"", silent_or(400))
case("MAL-LONG-HEADER-NAME", M, "9112 5",
     "a 100,000-byte field name", get("%s: val\r\n" % ("A" * 100000)), refuse(400, 431))
case("MAL-LONG-METHOD", M, "9112 3",
     "a 100,000-byte method", "%s / HTTP/1.1\r\nHost: {H}\r\n\r\n" % ("A" * 100000),
     refuse(400))
case("MAL-NON-ASCII-HEADER-NAME", M, "9112 5",
     "UTF-8 in a field name", get("X-T\xc3\xabst: value\r\n"), exact(400, close=True))
case("MAL-NON-ASCII-URL", M, "9112 3.2",
     "raw UTF-8 in the target", get(target="/caf\xc3\xa9"), exact(400, close=True))
case("MAL-CL-OVERFLOW", M, "9110 8.6",
     "a 20-digit Content-Length", post("Content-Length: 99999999999999999999\r\n"),
     exact(400, close=True))
case("MAL-WHITESPACE-ONLY-LINE", M, "9112 2.2",
     "a line of spaces for a request line", "   \r\n\r\n", silent_or(400))
case("MAL-NUL-IN-HEADER-VALUE", M, "9110 5.5",
     "a NUL in a field value", get("X-Test: val\x00ue\r\n"), exact(400, close=True))
case("MAL-CHUNK-SIZE-OVERFLOW", M, "9112 7.1",
     "a chunk size of 17 hex digits", chunked("FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n"),
     exact(400, close=True))
case("MAL-H2-PREFACE", M, "9113 3.4",
     "the HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
     silent_or(400, 505))
case("MAL-CL-EMPTY", M, "9110 8.6",
     "an empty Content-Length", post("Content-Length: \r\n"), exact(400, close=True))
case("MAL-CL-TAB-BEFORE-VALUE", M, "9110 5.5",
     "a tab as OWS before the Content-Length value (valid)",
     post("Content-Length:\t5\r\n", "hello"), strict(400))
URL_ODD = custom("400 (other 2xx-4xx warn)", lambda r, s: (PASS if s == CLOSED else FAIL)
                 if r is None else PASS if r.status == 400 else WARN
                 if 200 <= r.status < 500 else FAIL)
case("MAL-URL-BACKSLASH", M, "RFC 3986 2",
     "a backslash in the target", get(target="/path\\file"), URL_ODD)
case("MAL-URL-OVERLONG-UTF8", M, "RFC 3629 3",
     "an overlong UTF-8 `/` (C0 AF) in the target", get(target="/\xc0\xaf"),
     exact(400, close=True))
case("MAL-URL-PERCENT-NULL", M, "RFC 3986 2.1",
     "%00 in the target", get(target="/path%00.html"), URL_ODD)
case("MAL-URL-PERCENT-CRLF", M, "RFC 3986 2.1",
     "%0d%0a in the target", get(target="/path%0d%0aX-Injected:%20true"), URL_ODD)
case("MAL-CHUNK-EXT-64K", M, "9112 7.1.1",
     "a 64 KiB chunk extension", chunked("5;ext=%s\r\nhello\r\n0\r\n\r\n" % ("a" * 65536)),
     strict(400, 431))
case("MAL-RANGE-OVERLAPPING", M, "9110 14.2",
     "1,000 overlapping ranges", get("Range: bytes=%s\r\n" % ",".join(["0-"] * 1000)),
     custom("any of 200/206/400/416/431 (warn)", lambda r, s: (PASS if s == CLOSED else FAIL)
            if r is None else WARN if r.status in (200, 206, 400, 416, 431) else FAIL),
     scored=False)
case("MAL-POST-CL-HUGE-NO-BODY", M, "9112 6.2",
     "Content-Length: 999999999 and no body: wait or refuse",
     post("Content-Length: 999999999\r\n"), silent_or(400))

# --- Normalization (does a malformed name become a real field?) ---------------

BODY11 = "hello world"
for cid, field, std, odd, val, scored in [
    ("NORM-UNDERSCORE-CL", "Content_Length: 99", "Content-Length", "Content_Length", "99", True),
    ("NORM-SP-BEFORE-COLON-CL", "Content-Length : 5", "Content-Length", "Content-Length ", "5",
     True),
    ("NORM-TAB-IN-NAME", "Content\tLength: 99", "Content-Length", "Content\tLength", "99", True),
    ("NORM-CASE-TE", "TRANSFER-ENCODING: chunked", "Transfer-Encoding", "TRANSFER-ENCODING",
     "chunked", False),
    ("NORM-UNDERSCORE-TE", "Transfer_Encoding: chunked", "Transfer-Encoding",
     "Transfer_Encoding", "chunked", True),
]:
    case(cid, N, "9112 5", "`%s` beside Content-Length: 11" % field.replace("\t", "\\t"),
         "POST /echo HTTP/1.1\r\nHost: {H}\r\nContent-Length: 11\r\n%s\r\n\r\n%s"
         % (field, BODY11), no_normalizing(std, odd, val, case_only=cid == "NORM-CASE-TE"),
         scored=scored)


# ---------------------------------------------------------------------------


def render(part, host):
    """The bytes of one step."""
    if isinstance(part, bytes):
        return part
    if isinstance(part, tuple):
        kind = part[0]
        if kind == "TECL":
            inner = part[1].replace("{H}", host)
            size = "%x" % len(inner)
            body = "%s\r\n%s\r\n0\r\n\r\n" % (size, inner)
            head = "Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % (len(size) + 2)
            return post(head, body).replace("{H}", host).encode("latin-1")
        fields, body = part[1], part[2].replace("{H}", host)
        method = part[3] if len(part) > 3 else "POST"
        fields = fields.replace("{LEN}", str(len(body)))
        if method == "GET":
            fields = "Content-Length: %d\r\n" % len(body)
        return post(fields, body, method=method).replace("{H}", host).encode("latin-1")
    return part.replace("{H}", host).encode("latin-1")


def run_case(c, args, host_field):
    try:
        conn = Conn(args.host, args.port, args.timeout)
    except OSError as e:
        return {"verdict": ERROR, "error": str(e), "steps": []}
    steps = []
    try:
        state = OPEN
        for part in c["send"]:
            if state != OPEN:
                steps.append(Step(False, None, state))
                continue
            reply, state = conn.exchange(render(part, host_field))
            steps.append(Step(True, reply, state))
    finally:
        conn.close()
    if c["sequence"]:
        verdict = c["judge"](steps)
    else:
        verdict = c["judge"](steps[0].reply, steps[0].state)
    return {"verdict": verdict, "steps": steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for a response head (default 5)")
    ap.add_argument("--static-body", default="OK",
                    help="the fixed body an echo case also accepts (default OK)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--only", nargs="+", metavar="ID", help="run only these cases")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--require", type=int, metavar="N",
                    help="exit 1 unless at least N scored cases pass and no scored "
                         "smuggling case fails")
    args = ap.parse_args()
    STATIC[0] = args.static_body
    if args.list:
        for c in CASES:
            print("%-42s %-13s %-7s %-12s %s" % (c["id"], c["category"],
                                                 "scored" if c["scored"] else "-",
                                                 c["ref"], c["what"]))
        return 0
    host_field = args.host if args.port == 80 else "%s:%d" % (args.host, args.port)
    if ":" in args.host and not args.host.startswith("["):
        host_field = "[%s]" % args.host + ("" if args.port == 80 else ":%d" % args.port)
    wanted = {i.upper() for i in args.only} if args.only else None
    results = []
    for c in CASES:
        if wanted is not None and c["id"] not in wanted:
            continue
        out = run_case(c, args, host_field)
        steps = out["steps"]
        last = next((s for s in reversed(steps) if s.executed), None)
        row = {
            "id": c["id"],
            "category": c["category"],
            "scored": c["scored"],
            "rfc": c["ref"],
            "what": c["what"],
            "expected": c["judge"].expects,
            "verdict": out["verdict"],
            "status": [s.status for s in steps if s.executed],
            "connection": last.state if last else None,
        }
        if "error" in out:
            row["error"] = out["error"]
        results.append(row)
        if not args.json:
            mark = out["verdict"].upper() + ("" if c["scored"] else "*")
            got = ",".join("-" if s is None else str(s) for s in row["status"]) or "-"
            print("%-6s %-42s %-8s %-8s %s" % (mark, c["id"], got, row["connection"],
                                              row["expected"]), flush=True)
    scored = [r for r in results if r["scored"]]
    count = {v: sum(1 for r in scored if r["verdict"] == v) for v in (PASS, WARN, FAIL, ERROR)}
    smuggling = [r["id"] for r in scored if r["category"] == S and r["verdict"] != PASS
                 and r["verdict"] != WARN]
    summary = {
        "scored": len(scored),
        "passed": count[PASS],
        "warned": count[WARN],
        "failed": count[FAIL],
        "errors": count[ERROR],
        "unscored": len(results) - len(scored),
        "smuggling_failures": smuggling,
        "failures": [r["id"] for r in scored if r["verdict"] in (FAIL, ERROR)],
    }
    line = "passed %d of %d scored, smuggling failures: %d" % (
        count[PASS], len(scored), len(smuggling))
    if args.json:
        print(json.dumps({"summary": summary, "results": results}, indent=1))
    else:
        print("(%d warned, %d failed, %d errors; %d unscored cases not counted)" % (
            count[WARN], count[FAIL], count[ERROR], summary["unscored"]))
        if summary["failures"]:
            print("failed: " + " ".join(summary["failures"]))
        print(line)
    if args.require is not None and (count[PASS] < args.require or smuggling):
        print("below the requirement: %s" % line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
