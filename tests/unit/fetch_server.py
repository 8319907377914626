#!/usr/bin/python3
"""A deliberately misbehaving HTTP server for tests/unit/test_fetch.c.

Usage: fetch_server.py LOGFILE [LIFETIME_SECS]
Listens on 127.0.0.1 only, on an ephemeral port that it prints on stdout (one
line), appends "PATH RANGE" per request to LOGFILE, and exits by itself after
LIFETIME_SECS (default 60) in case the test that started it died.

Every route serves the same SIZE bytes, DATA[i] = (i * 31 + 7) % 251, which the
test computes too, unless the route says otherwise.
"""
import socket
import sys
import threading
import time

from httpkit import RangeHandler, serve

SIZE = 200000
DATA = bytes((i * 31 + 7) % 251 for i in range(SIZE))
CHUNK = 16384

counts = {}
lock = threading.Lock()
log_path = sys.argv[1]


def seen(path):
    with lock:
        counts[path] = counts.get(path, 0) + 1
        return counts[path]


class Handler(RangeHandler):
    def log(self):
        with lock:
            with open(log_path, "a") as f:
                f.write("%s %s\n" % (self.path, self.headers.get("Range", "-")))

    def error(self, code):
        body = b"error\n"
        self.head(code, len(body))
        self.wfile.write(body)

    def drop_halfway(self):
        """Promises the whole file, sends half, hangs up."""
        self.head(200, SIZE)
        self.wfile.write(DATA[: SIZE // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self):
        self.log()
        p = self.path
        n = seen(p)
        if p == "/good":
            self.send_file(DATA)
        elif p == "/norange":
            self.send_file(DATA, honour_range=False)
        elif p == "/404":
            self.error(404)
        elif p == "/flaky":
            # 500 on the first request, then the file.
            if n == 1:
                self.error(500)
            else:
                self.send_file(DATA)
        elif p == "/wrong":
            bad = bytearray(DATA)
            bad[SIZE // 3] ^= 0xFF
            self.send_file(bytes(bad))
        elif p == "/endless":
            # No length, close-delimited, never ends.
            self.head(200, None, [("Connection", "close")])
            self.close_connection = True
            block = DATA[:CHUNK]
            deadline = time.time() + 20
            try:
                while time.time() < deadline:
                    self.wfile.write(block)
            except OSError:
                pass
        elif p == "/biglen":
            # Announces ten times the size; the client must not even start.
            self.head(200, SIZE * 10)
            try:
                self.wfile.write(DATA)
            except OSError:
                pass
            self.close_connection = True
        elif p == "/drop":
            # Requests without Range are cut halfway; a Range is honoured.
            if self.headers.get("Range"):
                self.send_file(DATA)
            else:
                self.drop_halfway()
        elif p == "/drop-norange":
            # The first request is cut halfway; later ones ignore Range.
            if n == 1:
                self.drop_halfway()
            else:
                self.send_file(DATA, honour_range=False)
        elif p == "/short":
            # A complete response, just shorter than the expected size.
            self.send_file(DATA[: SIZE - 1000], honour_range=False)
        elif p == "/slow":
            self.head(200, SIZE)
            try:
                for i in range(SIZE):
                    self.wfile.write(DATA[i : i + 1])
                    time.sleep(0.5)
            except OSError:
                pass
            self.close_connection = True
        elif p == "/redirect":
            self.head(302, 0, [("Location", "/good")])
        elif p == "/redirect-file":
            self.head(302, 0, [("Location", "file:///etc/hostname")])
        elif p == "/loop":
            self.head(302, 0, [("Location", "/loop")])
        else:
            self.error(404)


def main():
    serve(Handler, int(sys.argv[2]) if len(sys.argv) > 2 else 60)


if __name__ == "__main__":
    main()
