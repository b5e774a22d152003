"""A tiny DNS server on 127.0.0.1 for tests: it answers A queries for one name with a list of
addresses the test changes as it goes (TTL 0), so that a gRPC channel's re-resolution can be
watched without touching /etc/hosts. Only what gRPC's c-ares resolver asks is understood."""
from __future__ import annotations

import socket
import struct
import threading

__all__ = ["LocalDns"]

_A, _IN = 1, 1


class LocalDns:
    """`with LocalDns("dreamd.test", ["127.0.0.1"]) as dns:` then `dns.addresses = [...]`;
    `dns.port` is its UDP port, for targets like dns://127.0.0.1:PORT/dreamd.test:50051."""

    def __init__(self, name: str, addresses: list[str]) -> None:
        self.name = name.lower().rstrip(".")
        self.addresses = list(addresses)
        self.queries = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "LocalDns":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(512)
            except OSError:  # the timeout: look at the stop flag again
                continue
            answer = self._answer(query)
            if answer:
                self._sock.sendto(answer, peer)

    def _answer(self, query: bytes) -> bytes | None:
        if len(query) < 17:
            return None
        labels, i = [], 12
        while i < len(query) and query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
            i += 1 + query[i]
        qtype, qclass = struct.unpack(">HH", query[i + 1:i + 5])
        question = query[12:i + 5]
        known = ".".join(labels).lower() == self.name
        ips = list(self.addresses) if known and (qtype, qclass) == (_A, _IN) else []
        self.queries += 1
        # QR, RD and RA set; NXDOMAIN (3) for other names, NOERROR with no answers for other types.
        flags = 0x8180 | (0 if known else 3)
        out = query[:2] + struct.pack(">HHHHH", flags, 1, len(ips), 0, 0) + question
        for ip in ips:
            out += struct.pack(">HHHIH", 0xC00C, _A, _IN, 0, 4) + socket.inet_aton(ip)
        return out
