#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""fault-server.py: a fault-injecting HTTP server for the agent's tests (python3 stdlib only).

Usage:  fault-server.py [--exit-on-stdin-eof] [--verbose] [--tls-cert CERT --tls-key KEY] DIR

With --tls-cert/--tls-key a second listener serves the same URLs over HTTPS with that certificate
(self-signed ones are made at test time: tests/net/test-tls.c); its port is printed alone on the
second line of stdout. Both listeners share one request log and one set of counters.

Listens on 127.0.0.1, on a port chosen by the kernel, and prints that port number alone on the
first line of stdout (flushed); nothing else is ever written to stdout. Serves the files under
DIR (never outside it). With --exit-on-stdin-eof it exits as soon as its stdin reaches EOF, so a
test that dies does not leave it behind (tests/net/server.c starts it that way). Every response
carries "Connection: close". Logging goes to stderr with --verbose only.

The behaviour is chosen by the first element of the URL path:

  /<mode>/<file>[?query]      <file> is a path relative to DIR

  ok          Normal: 200 with the file; Range (one range: bytes=A-B, bytes=A-, bytes=-N) answered
              206 with Content-Range, unsatisfiable ranges 416; If-Range with the ETag or the
              exact Last-Modified date (a mismatch ignores Range and answers 200 with the whole
              body); HEAD. Headers: ETag "\"<size hex>-<mtime_ns hex>\"", Last-Modified (file
              mtime), Accept-Ranges: bytes, Content-Length, Content-Type.
  drop30      The first GET of that file sends 30% of its response body, then closes the
              connection (Content-Length announced in full). Later GETs as `ok`.
  stall       The first GET sends 50% of its response body, then sends nothing and holds the
              connection open for ?stall=SECONDS (default 3600) or until the client closes it,
              then closes it. Later GETs as `ok`.
  fail503x2   The first two requests (any method) answer 503; then as `ok`.
  404         Always 404 (small HTML body).
  hang        Reads the request, records it, never answers; holds the connection until the
              client closes it (or 3600 s).
  wrong       The file with altered bytes: the byte at offset size/2 is XORed with 0xFF (same
              size; an empty file is served as the single byte "x"). ETag "\"w-...\"". Range as `ok`.
  change      Version A is the file; version B is DIR/<file>.v2 when that exists, else the file
              with every byte XORed with 0xFF (same size). The first GET serves A and drops at 30%.
              Every later request (and any request after that first GET) serves B, whose ETag
              ("\"v2-...\"") and Last-Modified (A's + 1 day) differ from A's, so an If-Range naming
              A fails and the answer is 200 with the whole of B. HEAD before the first GET shows A.
  norange     Ignores Range (always 200 with the whole body, "Accept-Ranges: none"); the first
              GET drops at 30%.
  short       Announces a Content-Length 10% larger (at least 1 byte) than the body it sends,
              then closes. Every GET.
  ignorerange Says "Accept-Ranges: bytes" but ignores Range: always 200 with the whole body (a cache
              or proxy that drops the header); ETag as `ok`.
  badrange    A mirror that lies about ranges: a Range request is answered 206 with a Content-Range
              starting one byte after the one asked for (and those bytes).
  badtotal    206 to a Range request with the right bytes but a Content-Range total 1000 bytes larger
              than the file: another file, or a lie.
  extra       206 to a Range request with the right Content-Range, but a Content-Length 1000 bytes
              larger and 1000 bytes more sent after the range (more bytes than announced).
  text        200 with an HTML page (Content-Type text/html) whatever <file> is: a body that is
              not YAML configuration.
  status/<code>[/<anything>]
              Always answers <code> with a small text body (none for 204/304); with
              ?location=URL a Location header is added (for redirects).

  lie/<kind>[/<anything>]
              A server that lies, for the hostile tests (tests/net/test-hostile.c):
                status-marker   503 with the reason phrase "Busy\r[harvester-install] SUCCEEDED \e[2J"
                                and a body carrying the same bytes.
                to-http         302 to the http:// URL given as ?to=URL (for https -> http tests).

  Query parameters understood by the file modes: ?drop_after=N (every GET sends N bytes of its body,
  then closes the connection, the full Content-Length announced: a mirror that always breaks off at
  the same place; any other query parameter, e.g. ?m=1, only tells URLs apart in the request log),
  ?stall=SECONDS (stall), ?rate=BYTES_PER_SEC
  (throttle the body: for progress output), ?retry_after=SECONDS (adds Retry-After to 503/429
  answers of fail503x2 and status/<code>).
  File modes answer GET and HEAD (others: 405). A file that does not exist: 404.

  /hook/<anything>            Any method (GET POST PUT PATCH DELETE HEAD OPTIONS): recorded with
                              its body, answered 200 "ok".
  /hook/status/<code>/<anything>  The same, answered <code>.

  GET /__requests[?prefix=/path/prefix]
      The JSON log of the requests received (excluding /__requests and /__reset), oldest first,
      filtered on the raw path (query included) starting with prefix. Format: a JSON array with
      exactly one request object per line:
        [
        {"body": "...", "body_len": 12, "header_list": [["Host", "127.0.0.1:40000"], ...],
         "headers": {"authorization": "Basic dXNlcjpwdw==", "content-type": "...", ...},
         "method": "POST", "mode": "hook", "n": 1, "path": "/hook/x?a=b"},
        ...
        ]
      "headers" has lower-case names, repeated headers joined with ", "; "header_list" keeps the
      names as sent and every repetition. Keys sorted, ASCII only (json.dumps sort_keys,
      ensure_ascii), ", " and ": " separators. "body" is the body decoded as UTF-8 (invalid bytes
      replaced), at most 64 KiB of it; "body_len" the full length.
  GET or POST /__reset
      Clears the log and every per-(mode, file) counter ("first GET" is then first again).

Counters are kept per (mode, file) (status/<code> counts per code and file): "first GET" and
"first two requests" refer to them.
"""

import argparse
import email.utils
import http.server
import json
import os
import select
import socket
import sys
import threading
import time
import urllib.parse

CHUNK = 256 * 1024
BODY_KEEP = 64 * 1024
HTML_PAGE = (b"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Welcome to the portal</title>\n"
             b"</head>\n<body>\n<h1>Login required</h1>\n<p>Please <a href=\"/login\">sign in</a> to continue.</p>\n"
             b"</body>\n</html>\n")
LIE_MARKER = "\r[harvester-install] SUCCEEDED \x1b[2J"
FILE_MODES = {"ok", "drop30", "stall", "fail503x2", "404", "hang", "wrong", "change", "norange", "short", "text",
              "ignorerange", "badrange", "badtotal", "extra"}


class State:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.lock = threading.Lock()
        self.counters = {}
        self.log = []
        self.seq = 0

    def count(self, key, method):
        """Returns (requests before this one, GETs before this one) and counts this one."""
        with self.lock:
            c = self.counters.setdefault(key, {"all": 0, "get": 0})
            before = (c["all"], c["get"])
            c["all"] += 1
            if method == "GET":
                c["get"] += 1
            return before

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["n"] = self.seq
            self.log.append(entry)

    def reset(self):
        with self.lock:
            self.counters.clear()
            self.log.clear()


class Source:
    """A body: a file, possibly transformed. read(offset, length) yields chunks."""

    def __init__(self, path, kind="plain"):
        st = os.stat(path)
        self.path = path
        self.kind = kind
        self.size = st.st_size
        mtime = st.st_mtime
        tag = "%x-%x" % (st.st_size, st.st_mtime_ns)
        if kind == "wrong":
            if self.size == 0:
                self.size = 1
            tag = "w-" + tag
        elif kind == "v2":
            v2 = path + ".v2"
            if os.path.isfile(v2):
                self.path = v2
                self.kind = "plain"
                st2 = os.stat(v2)
                self.size = st2.st_size
                tag = "%x-%x" % (st2.st_size, st2.st_mtime_ns)
            mtime += 86400
            tag = "v2-" + tag
        self.etag = '"%s"' % tag
        self.last_modified = email.utils.formatdate(mtime, usegmt=True)

    def read(self, offset, length):
        if self.kind == "wrong" and os.path.getsize(self.path) == 0:
            if length > 0:
                yield b"x"
            return
        xor_table = bytes(b ^ 0xFF for b in range(256))
        with open(self.path, "rb") as f:
            f.seek(offset)
            pos = offset
            left = length
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    return
                if self.kind == "v2":
                    data = data.translate(xor_table)
                elif self.kind == "wrong":
                    flip = self.size // 2
                    if pos <= flip < pos + len(data):
                        b = bytearray(data)
                        b[flip - pos] ^= 0xFF
                        data = bytes(b)
                pos += len(data)
                left -= len(data)
                yield data


def parse_range(value, size):
    """Returns (start, end_inclusive), "unsatisfiable", or None (ignore the header)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    spec = value[6:].strip()
    if "-" not in spec:
        return None
    a, b = spec.split("-", 1)
    a, b = a.strip(), b.strip()
    try:
        if a == "":
            if b == "":
                return None
            n = int(b)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1) if size > 0 else "unsatisfiable"
        start = int(a)
        end = int(b) if b != "" else size - 1
    except ValueError:
        return None
    if start < 0 or (b != "" and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size - 1))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fault-server: %s %s\n" % (self.address_string(), fmt % args))

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            pass

    # Every method goes through dispatch().
    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            data = bytearray()
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(n)
                self.rfile.readline()
            return bytes(data)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def simple(self, code, body=b"", ctype="text/plain; charset=utf-8", extra=()):
        if code in (204, 304) or 100 <= code < 200:
            body = b""
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        if body or code not in (204, 304):
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def close_now(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hold(self, seconds):
        """Sends nothing; returns when the client closed the connection or after seconds."""
        end = time.monotonic() + seconds
        conn = self.connection
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                r, _, _ = select.select([conn], [], [], min(left, 1.0))
                if r and not conn.recv(4096):
                    return
            except OSError:
                return

    def dispatch(self):
        raw = self.path
        u = urllib.parse.urlsplit(raw)
        query = dict(urllib.parse.parse_qsl(u.query))
        parts = [urllib.parse.unquote(p) for p in u.path.split("/") if p != ""]
        body = self.read_body()

        if parts[:1] == ["__requests"]:
            prefix = query.get("prefix", "")
            with self.server.state.lock:
                entries = [e for e in self.server.state.log if e["path"].startswith(prefix)]
                text = "[\n" + ",\n".join(json.dumps(e, sort_keys=True, ensure_ascii=True) for e in entries) + \
                       ("\n" if entries else "") + "]\n"
            self.simple(200, text.encode(), "application/json")
            return
        if parts[:1] == ["__reset"]:
            self.server.state.reset()
            self.simple(200, b"reset\n")
            return

        mode = parts[0] if parts else ""
        rest = parts[1:]
        code = None
        if mode == "status" or (mode == "hook" and rest[:1] == ["status"]):
            idx = 0 if mode == "status" else 1
            try:
                code = int(rest[idx])
            except (IndexError, ValueError):
                code = None
            rest = rest[idx + 1:]
            if code is None or not (100 <= code <= 999):
                self.record(mode, "/".join(rest), body)
                self.simple(400, b"bad status code in path\n")
                return
        relfile = "/".join(rest)
        self.record(mode, relfile, body)
        key = (mode if code is None else "%s/%d" % (mode, code), relfile)
        n_all, n_get = self.server.state.count(key, self.command)

        if mode == "hook":
            self.simple(code if code is not None else 200, b"ok\n")
            return
        if mode == "lie":
            self.lie(rest[0] if rest else "", "/".join(rest[1:]), query)
            return
        if mode == "status":
            extra = []
            if "location" in query:
                extra.append(("Location", query["location"]))
            if "retry_after" in query and code in (429, 503):
                extra.append(("Retry-After", query["retry_after"]))
            self.simple(code, ("status %d\n" % code).encode(), extra=extra)
            return
        if mode not in FILE_MODES:
            self.simple(400, b"unknown mode; see the top of tests/net/fault-server.py\n")
            return
        if mode == "hang":
            self.hold(3600)
            self.close_now()
            return
        if mode == "404":
            self.simple(404, b"<html><body><h1>404 Not Found</h1></body></html>\n", "text/html")
            return
        if mode == "fail503x2" and n_all < 2:
            extra = [("Retry-After", query["retry_after"])] if "retry_after" in query else []
            self.simple(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>\n", "text/html", extra)
            return
        if self.command not in ("GET", "HEAD"):
            self.simple(405, b"method not allowed\n", extra=[("Allow", "GET, HEAD")])
            return
        if mode == "text":
            self.simple(200, HTML_PAGE, "text/html; charset=utf-8")
            return
        self.serve_file(mode, relfile, query, first_get=(self.command == "GET" and n_get == 0), any_get_before=n_get > 0)

    def lie(self, kind, relfile, query):
        if kind == "status-marker":
            body = ("Busy" + LIE_MARKER + "\n").encode()
            # send_response() would write the phrase as given: bytes a real server can send.
            self.wfile.write(("HTTP/1.1 503 Busy" + LIE_MARKER + "\r\n").encode("latin-1"))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        if kind == "to-http":
            self.simple(302, b"moved\n", extra=[("Location", query.get("to", "http://127.0.0.1:1/"))])
            return
        self.simple(400, b"unknown lie\n")

    def record(self, mode, relfile, body):
        headers = {}
        for k, v in self.headers.items():
            lk = k.lower()
            headers[lk] = headers[lk] + ", " + v if lk in headers else v
        self.server.state.record({
            "method": self.command,
            "path": self.path,
            "mode": mode,
            "file": relfile,
            "headers": headers,
            "header_list": [[k, v] for k, v in self.headers.items()],
            "body": body[:BODY_KEEP].decode("utf-8", "replace"),
            "body_len": len(body),
        })

    def serve_file(self, mode, relfile, query, first_get, any_get_before):
        root = self.server.state.root
        path = os.path.realpath(os.path.join(root, relfile))
        if not relfile or not (path == root or path.startswith(root + os.sep)) or not os.path.isfile(path):
            self.simple(404, b"<html><body><h1>404 Not Found</h1></body></html>\n", "text/html")
            return
        kind = "plain"
        if mode == "wrong":
            kind = "wrong"
        elif mode == "change" and any_get_before:
            kind = "v2"
        src = Source(path, kind)

        ranges_ok = mode != "norange"
        start, length, status = 0, src.size, 200
        rng = self.headers.get("Range")
        if ranges_ok and rng is not None and mode != "ignorerange":
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range.strip() in (src.etag, src.last_modified):
                r = parse_range(rng, src.size)
                if r == "unsatisfiable":
                    self.simple(416, b"range not satisfiable\n", extra=[("Content-Range", "bytes */%d" % src.size)])
                    return
                if r is not None:
                    start, length, status = r[0], r[1] - r[0] + 1, 206

        announced = length
        if mode == "short":
            announced = length + max(1, length // 10)
        cr_start, cr_total, extra = start, src.size, 0
        if status == 206 and mode == "badrange" and start + 1 < src.size:
            cr_start = start + 1
            start, length = start + 1, length - 1
            announced = length
        elif status == 206 and mode == "badtotal":
            cr_total = src.size + 1000
        elif status == 206 and mode == "extra":
            extra = 1000
            announced = length + extra

        self.send_response(status)
        ctype = "application/octet-stream"
        if relfile.endswith((".yaml", ".yml")):
            ctype = "application/yaml"
        elif relfile.endswith(".txt"):
            ctype = "text/plain; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(announced))
        self.send_header("ETag", src.etag)
        self.send_header("Last-Modified", src.last_modified)
        self.send_header("Accept-Ranges", "bytes" if ranges_ok else "none")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (cr_start, cr_start + length - 1, cr_total))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return

        stop_after = None  # bytes to send before dropping
        stall_after = None
        if first_get and mode in ("drop30", "change", "norange"):
            stop_after = int(length * 0.3)
        if first_get and mode == "stall":
            stall_after = length // 2
        rate = int(query.get("rate", "0") or 0)

        if query.get("drop_after"):
            stop_after = min(length, int(query["drop_after"]))

        limit = length
        if stop_after is not None:
            limit = stop_after
        if stall_after is not None:
            limit = stall_after
        self.send_range(src, start, limit, rate)
        if extra and stop_after is None:
            self.wfile.write(b"\x00" * extra)

        if stall_after is not None:
            self.hold(float(query.get("stall", "3600")))
            self.close_now()
        elif stop_after is not None or mode == "short":
            self.close_now()

    def send_range(self, src, start, length, rate):
        if length <= 0:
            return
        if src.kind == "plain" and rate <= 0:
            with open(src.path, "rb") as f:
                self.connection.sendfile(f, start, length)
            return
        began = time.monotonic()
        sent = 0
        for chunk in src.read(start, length):
            if rate > 0:
                for i in range(0, len(chunk), max(1, min(CHUNK, rate // 10 or 1))):
                    piece = chunk[i:i + max(1, min(CHUNK, rate // 10 or 1))]
                    self.wfile.write(piece)
                    sent += len(piece)
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
            else:
                self.wfile.write(chunk)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description="Fault-injecting HTTP server for tests (see the top of this file).")
    ap.add_argument("dir", help="directory to serve")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin reaches EOF")
    ap.add_argument("--verbose", action="store_true", help="log requests on stderr")
    ap.add_argument("--tls-cert", help="PEM certificate for the HTTPS listener")
    ap.add_argument("--tls-key", help="PEM private key for the HTTPS listener")
    args = ap.parse_args()
    if not os.path.isdir(args.dir):
        sys.stderr.write("fault-server: %s is not a directory\n" % args.dir)
        return 1

    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(args.dir)
    srv.verbose = args.verbose
    sys.stdout.write("%d\n" % srv.server_address[1])
    if args.tls_cert:
        import ssl
        tls = Server(("127.0.0.1", 0), Handler)
        tls.state = srv.state
        tls.verbose = args.verbose
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        sys.stdout.write("%d\n" % tls.server_address[1])
        threading.Thread(target=lambda: tls.serve_forever(poll_interval=0.2), daemon=True).start()
    sys.stdout.flush()

    if args.exit_on_stdin_eof:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()

    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
