"""One persistent Redis connection speaking RESP, for the benchmark pollers (drain-timer.py,
copy-with-drain.py): a command and its integer reply per round trip, no client library."""
import socket


class RespConnection:
    def __init__(self, port, name):
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def integer(self, *words):
        """Sends one command; returns its integer reply (anything else ends the program)."""
        parts = [b"*%d\r\n" % len(words)]
        for word in words:
            data = word.encode() if isinstance(word, str) else word
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        line = self.reader.readline()
        if line[:1] != b":":
            raise SystemExit(f"{self.name}: unexpected reply {line!r}")
        return int(line[1:])
