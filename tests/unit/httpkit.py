"""Loopback HTTP plumbing shared by the test servers (fetch_server.py,
net_server.py): a request handler base with Range support, a quiet threading
server, and the serve loop that prints the port and ends itself."""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def head(self, code, length=None, extra=()):
        self.send_response(code)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def send_file(self, data, honour_range=True):
        rng = self.headers.get("Range")
        if honour_range and rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else len(data) - 1
            if start >= len(data):
                self.head(416, 0, [("Content-Range", "bytes */%d" % len(data))])
                return
            end = min(end, len(data) - 1)
            self.head(206, end - start + 1,
                      [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))])
            self.wfile.write(data[start:end + 1])
        else:
            self.head(200, len(data))
            self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def serve(handler, lifetime):
    """Listens on 127.0.0.1 on an ephemeral port, prints it (one line), and
    serves until SIGALRM after `lifetime` seconds ends the process (its
    default action works even if a handler thread hangs)."""
    signal.alarm(lifetime)
    srv = Server(("127.0.0.1", 0), handler)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()
