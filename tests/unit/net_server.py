#!/usr/bin/python3
"""Loopback HTTP server for tests/unit/test_sources_net.c.

Usage: net_server.py GIT_ROOT FILES_DIR LOGFILE [LIFETIME_SECS]

Listens on 127.0.0.1 only, on an ephemeral port that it prints on stdout (one
line), appends "METHOD PATH RANGE" per request to LOGFILE, and exits by itself
after LIFETIME_SECS (default 60) in case the test that started it died.

  /art/<behaviour>/<file>   FILES_DIR/<file>, served as <behaviour> says:
      good        the file; a Range request is honoured (206)
      drop        the first request for this path promises the whole file,
                  sends half and hangs up; later ones behave as good
      dropalways  every request is cut halfway, and Range is ignored
      endless     no length, close-delimited, never ends
      short       a complete response 100 bytes shorter than the file
      long        a complete response with 1000 bytes more than the file
      wrong       the file with one byte flipped (same size)
      404         Not Found
  anything else   git smart HTTP: `git http-backend` run as a CGI program with
                  GIT_PROJECT_ROOT=GIT_ROOT and GIT_HTTP_EXPORT_ALL set, so
                  http://127.0.0.1:PORT/repo serves GIT_ROOT/repo.
"""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from httpkit import RangeHandler, serve

git_root, files_dir, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
counts = {}
lock = threading.Lock()


def seen(path):
    with lock:
        counts[path] = counts.get(path, 0) + 1
        return counts[path]


class Handler(RangeHandler):
    def log(self):
        with lock:
            with open(log_path, "a") as f:
                f.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Range", "-")))

    def hang_up_halfway(self, data):
        self.head(200, len(data))
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def artifact(self, behaviour, name):
        n = seen(self.path)
        try:
            with open(os.path.join(files_dir, os.path.basename(name)), "rb") as f:
                data = f.read()
        except OSError:
            behaviour = "404"
        if behaviour == "good":
            self.send_file(data)
        elif behaviour == "drop":
            if n == 1:
                self.hang_up_halfway(data)
            else:
                self.send_file(data)
        elif behaviour == "dropalways":
            self.hang_up_halfway(data)
        elif behaviour == "endless":
            self.head(200, None, [("Connection", "close")])
            self.close_connection = True
            deadline = time.time() + 20
            try:
                while time.time() < deadline:
                    self.wfile.write(data)
            except OSError:
                pass
        elif behaviour == "short":
            self.send_file(data[:-100], honour_range=False)
        elif behaviour == "long":
            self.send_file(data + b"\0" * 1000, honour_range=False)
        elif behaviour == "wrong":
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0xFF
            self.send_file(bytes(bad))
        else:
            body = b"not found\n"
            self.head(404, len(body))
            self.wfile.write(body)

    def request_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def git(self):
        path, _, query = self.path.partition("?")
        body = self.request_body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        for h in ("Git-Protocol", "Content-Encoding"):
            if self.headers.get(h):
                env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        # CGI headers end with an empty line (CRLF or LF).
        ends = [(i, n) for i, n in ((out.find(b"\r\n\r\n"), 4), (out.find(b"\n\n"), 2)) if i >= 0]
        sep, skip = min(ends) if ends else (-1, 0)
        if sep < 0:
            self.head(500, 0)
            return
        code, headers = 200, []
        for line in out[:sep].decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                code = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        payload = out[sep + skip:]
        self.head(code, len(payload), headers)
        self.wfile.write(payload)

    def do_GET(self):
        self.log()
        parts = self.path.split("/")
        if len(parts) == 4 and parts[1] == "art":
            self.artifact(parts[2], parts[3])
        else:
            self.git()

    def do_POST(self):
        self.log()
        self.git()


def main():
    serve(Handler, int(sys.argv[4]) if len(sys.argv) > 4 else 60)


if __name__ == "__main__":
    main()
