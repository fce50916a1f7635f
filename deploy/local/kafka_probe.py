#!/usr/bin/env python3
"""Tiny stdlib-only helpers for deploy/local/kafka.sh.

    kafka_probe.py ready HOST:PORT [--timeout S] [--group-coordinator]
        exit 0 when a Kafka broker answers a Metadata request (and, with
        --group-coordinator, when FindCoordinator finds a group coordinator,
        i.e. __consumer_offsets exists and is loaded); 1 otherwise.
    kafka_probe.py port-free PORT
        exit 0 when 127.0.0.1:PORT can be bound (nothing listens there), 1 otherwise.
    kafka_probe.py cluster-id
        print a fresh random KRaft cluster id (base64url of 16 random bytes, like
        `kafka-storage random-uuid`).

It speaks just enough of the Kafka wire protocol (Metadata v4, FindCoordinator v1:
both are in every 4.x broker, KIP-896 removed only older versions) that the script
needs neither the venv nor a second JVM to know that the broker really serves requests.
"""

from __future__ import annotations

import argparse
import base64
import errno
import os
import socket
import struct
import sys
import time

CLIENT_ID = b"qw-kafka-probe"
API_METADATA = 3
API_FIND_COORDINATOR = 10
ERR_NONE = 0


class ProbeError(Exception):
    pass


def _request(sock: socket.socket, api_key: int, api_version: int, corr: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, api_version, corr, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    (got_corr,) = struct.unpack_from(">i", data, 0)
    if got_corr != corr:
        raise ProbeError(f"correlation id mismatch: sent {corr}, got {got_corr}")
    return data[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by peer")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s


def metadata(sock: socket.socket) -> tuple[str | None, list[tuple[int, str, int]]]:
    # Metadata v4: topics = null (all topics), allow_auto_topic_creation = false
    body = struct.pack(">ib", -1, 0)
    r = _Reader(_request(sock, API_METADATA, 4, 1, body))
    r.int32()  # throttle_time_ms
    brokers = []
    for _ in range(r.int32()):
        node_id = r.int32()
        host = r.string() or ""
        port = r.int32()
        r.string()  # rack
        brokers.append((node_id, host, port))
    cluster_id = r.string()
    return cluster_id, brokers


def find_group_coordinator(sock: socket.socket, group: str) -> tuple[int, str | None]:
    # FindCoordinator v1: key (group id), key_type 0 = group
    g = group.encode()
    body = struct.pack(">h", len(g)) + g + struct.pack(">b", 0)
    r = _Reader(_request(sock, API_FIND_COORDINATOR, 1, 2, body))
    r.int32()  # throttle_time_ms
    error_code = r.int16()
    error_message = r.string()
    return error_code, error_message


def cmd_ready(address: str, timeout: float, group_coordinator: bool) -> int:
    host, _, port_s = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port_s)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            cluster_id, brokers = metadata(sock)
            if not brokers:
                print("not ready: metadata lists no broker yet", file=sys.stderr)
                return 1
            if group_coordinator:
                code, msg = find_group_coordinator(sock, "qw-kafka-probe")
                if code != ERR_NONE:
                    print(f"not ready: group coordinator error {code} {msg or ''}", file=sys.stderr)
                    return 1
    except (OSError, ProbeError, struct.error, ValueError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    listed = ", ".join(f"{n}@{h}:{p}" for n, h, p in brokers)
    print(f"cluster_id={cluster_id} brokers=[{listed}]")
    return 0


def cmd_port_free(port: int) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return 1
        raise
    finally:
        s.close()
    return 0


def cmd_cluster_id() -> int:
    while True:
        raw = os.urandom(16)
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        # Kafka reserves the all-zero uuid and the METADATA_TOPIC id (…0001); like Kafka's
        # own Uuid.randomUuid, never start with "-": the storage tool would read the id as
        # an option ("argument --cluster-id/-t: expected one argument"), 1 run in 64.
        if raw not in (bytes(16), bytes(15) + b"\x01") and not text.startswith("-"):
            break
    print(text)
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ready")
    r.add_argument("address")
    r.add_argument("--timeout", type=float, default=3.0)
    r.add_argument("--group-coordinator", action="store_true")
    r.add_argument("--wait", type=float, default=0.0, help="retry for up to this many seconds")
    f = sub.add_parser("port-free")
    f.add_argument("port", type=int)
    sub.add_parser("cluster-id")
    args = p.parse_args(argv)
    if args.cmd == "ready":
        deadline = time.monotonic() + args.wait
        while True:
            rc = cmd_ready(args.address, args.timeout, args.group_coordinator)
            if rc == 0 or time.monotonic() >= deadline:
                return rc
            time.sleep(0.5)
    if args.cmd == "port-free":
        return cmd_port_free(args.port)
    return cmd_cluster_id()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
