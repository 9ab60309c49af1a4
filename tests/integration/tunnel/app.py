#!/usr/bin/env python3
"""The app side of the tunnel tests, run in a pod: connects to ADDR:443, sends a real
ClientHello for HOST (made by Python's ssl over memory BIOs), then acts out ACTION and
prints what it saw, one line: "recv=N end=eof|reset|timeout ...".
  read      read until the end ("first" as the first bytes arrive, if APP_SAY_FIRST=1)
  fin       half-close after the hello, then read until the end
  rst       wait for the first byte, then reset (SO_LINGER 0)
  rstnow    reset once the file $APP_RESET_WHEN exists (the test makes it), with no byte back
  sendmore  read until the end, then send "more" (allowed after the origin's FIN)
  tls       a full TLS handshake and GET with the CA in $CA (real client): "ok" or the failure
"""
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from tls_hello import client_hello  # noqa: E402

addr, host, action = sys.argv[1], sys.argv[2], sys.argv[3]
timeout = float(os.environ.get("APP_TIMEOUT", "8"))
# APP_SAY_FIRST=1: print "first" the moment the first bytes arrive (a test waits on it).
say_first = os.environ.get("APP_SAY_FIRST", "0") == "1"


def read_to_end(s):
    total = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return total, "eof"
            if say_first and total == 0:
                print("first", flush=True)
            total += len(data)
    except ConnectionResetError:
        return total, "reset"
    except socket.timeout:
        return total, "timeout"


def tls_get():
    """Real TLS through the tunnel; counts the bytes that came back before any failure."""
    s = socket.create_connection((addr, 443), timeout=timeout)
    ctx = ssl.create_default_context(cafile=os.environ["CA"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    received = 0

    def flush():
        data = outgoing.read()
        if data:
            s.sendall(data)

    def fill():
        nonlocal received
        data = s.recv(65536)
        if not data:
            incoming.write_eof()
            return
        received += len(data)
        incoming.write(data)

    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                fill()
        flush()
        obj.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        flush()
        body = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                body += chunk
            except ssl.SSLWantReadError:
                fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
        ok = b"hello from" in body
        return ("ok" if ok else "bad-body") + f" recv={received}"
    except Exception as e:  # noqa: BLE001 - any failure is reported with what came before it
        return f"failed recv={received} error={type(e).__name__}"
    finally:
        s.close()


if action == "tls":
    print(tls_get())
    sys.exit(0)

s = socket.create_connection((addr, 443), timeout=timeout)
s.sendall(client_hello(host))
if action == "read":
    n, end = read_to_end(s)
    print(f"recv={n} end={end}")
elif action == "fin":
    s.shutdown(socket.SHUT_WR)
    n, end = read_to_end(s)
    print(f"recv={n} end={end}")
elif action == "rst":
    first = s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print(f"recv={len(first)} end=sent-reset")
elif action == "rstnow":
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.environ["APP_RESET_WHEN"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("recv=0 end=sent-reset")
elif action == "sendmore":
    n, end = read_to_end(s)
    try:
        s.sendall(b"more")
        s.shutdown(socket.SHUT_WR)
        sent = "sent-more"
    except OSError as e:
        sent = f"send-failed:{e}"
    print(f"recv={n} end={end} {sent}")
