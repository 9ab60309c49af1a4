#!/usr/bin/env python3
"""The drain test's origin and apps (tests/fault/drain.sh). Apps send a real ClientHello
(Python's ssl over memory BIOs) for HOST; the origin is plain TCP behind the gateway.

  origin ADDR MODE LOG       listen on ADDR:443; per connection read the first bytes, then
      paced    send SIZE bytes (deterministic) over SECONDS, then FIN
      forever  send a chunk every 100 ms until the peer goes
      quick    send "ok", then FIN
      mute     send nothing; wait until the peer goes
    and log "peer=IP:PORT mode=MODE first=N end=..." per connection.
  streams ADDR HOST N        N connections at once; "opened N" once every one has a byte,
                             then one line per stream and a summary:
                             "streams=N complete=C reset=R short=S timeout=T refused=F"
                             (complete: SIZE bytes whose SHA-256 matches, then EOF)
  loop ADDR HOST STOPFILE    connects in a tight loop to a quick origin until STOPFILE
                             exists; prints counts and the window of failed connects
SIZE and SECONDS come from DRAIN_SIZE (bytes, default 524288) and DRAIN_SECONDS (5).
"""
import errno
import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from tls_hello import client_hello  # noqa: E402

SIZE = int(os.environ.get("DRAIN_SIZE", "524288"))
SECONDS = float(os.environ.get("DRAIN_SECONDS", "5"))
CHUNK = 8192


def failure(e):
    """How a connection attempt ended, from the exception that ended it."""
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, socket.timeout):
        return "timeout"
    return "error:" + str(e)


def payload(size):
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest() * 256  # 8 KiB per block
        i += 1
    return bytes(out[:size])


# ---- origin ----
def origin(addr, mode, log):
    lock = threading.Lock()
    data = payload(SIZE) if mode == "paced" else b""

    def note(text):
        with lock:
            with open(log, "a") as f:
                f.write(text + "\n")

    def serve(conn, peer):
        first, end = 0, "?"
        try:
            first = len(conn.recv(65536))
            if mode == "paced":
                steps = max(1, SIZE // CHUNK)
                pause = SECONDS / steps
                for off in range(0, SIZE, CHUNK):
                    conn.sendall(data[off:off + CHUNK])
                    time.sleep(pause)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                end = "sent-all"
            elif mode == "forever":
                while True:
                    conn.sendall(b"x" * 1024)
                    time.sleep(0.1)
            elif mode == "mute":
                while conn.recv(65536):
                    pass
                end = "peer-closed"
            else:
                conn.sendall(b"ok")
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                end = "sent-all"
        except OSError as e:
            end = "error:" + (errno.errorcode.get(e.errno, str(e)) if e.errno else str(e))
        finally:
            conn.close()
            note(f"peer={peer[0]}:{peer[1]} mode={mode} first={first} end={end}")

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((addr, 443))
    server.listen(512)
    while True:
        c, peer = server.accept()
        threading.Thread(target=serve, args=(c, peer), daemon=True).start()


# ---- apps ----
def streams(addr, host, n):
    hello = client_hello(host)
    expected = hashlib.sha256(payload(SIZE)).hexdigest()
    results = [None] * n
    first = threading.Semaphore(0)

    def one(i):
        got, h, outcome, firstseen = 0, hashlib.sha256(), "?", False
        try:
            s = socket.create_connection((addr, 443), timeout=60)
            s.sendall(hello)
            while True:
                b = s.recv(65536)
                if not b:
                    outcome = "eof"
                    break
                if not firstseen:
                    firstseen = True
                    first.release()
                got += len(b)
                h.update(b)
        except OSError as e:
            outcome = failure(e)
        if not firstseen:
            first.release()
        if outcome == "eof" and got == SIZE and h.hexdigest() == expected:
            outcome = "complete"
        elif outcome == "eof":
            outcome = "short"
        results[i] = (outcome, got)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for _ in range(n):
        first.acquire()
    print(f"opened {n}", flush=True)
    for t in threads:
        t.join()
    counts = {}
    for i, (outcome, got) in enumerate(results):
        print(f"stream {i} {outcome} bytes={got}")
        key = outcome.split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    keys = ["complete", "reset", "short", "timeout", "refused", "error"]
    print(f"streams={n} " + " ".join(f"{k}={counts.get(k, 0)}" for k in keys), flush=True)


def loop(addr, host, stopfile):
    hello = client_hello(host)
    attempts, ok, fails = 0, 0, {}
    last_ok = None
    first_fail = last_fail = None
    window_start = window_end = None
    max_gap_ms = 0.0
    start = time.monotonic()
    while not os.path.exists(stopfile):
        attempts += 1
        t = time.monotonic()
        outcome = "ok"
        try:
            s = socket.create_connection((addr, 443), timeout=2)
            s.sendall(hello)
            got = b""
            s.settimeout(3)
            while True:
                b = s.recv(100)
                if not b:
                    break
                got += b
            s.close()
            if got != b"ok":
                outcome = "short"
        except OSError as e:
            outcome = failure(e).split(":")[0]
        now = time.monotonic()
        if outcome == "ok":
            ok += 1
            if last_ok is not None:
                max_gap_ms = max(max_gap_ms, (now - last_ok) * 1000)
            if first_fail is not None and window_end is None:
                window_end = now
            last_ok = now
        else:
            fails[outcome] = fails.get(outcome, 0) + 1
            if first_fail is None:
                first_fail = t
                window_start = last_ok if last_ok is not None else start
            last_fail = now
            window_end = None
            time.sleep(0.001)
    failed = sum(fails.values())
    window = (window_end - window_start) * 1000 if (first_fail and window_end) else 0
    detail = " ".join(f"{k}={v}" for k, v in sorted(fails.items())) or "none"
    print(f"attempts={attempts} ok={ok} failed={failed} ({detail}) window_ms={window:.1f} "
          f"max_gap_between_ok_ms={max_gap_ms:.1f}", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "origin":
        origin(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "streams":
        streams(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
