#!/usr/bin/env python3
"""A TCP origin the tunnel tests control: listens on ADDR:443 and, per connection, reads
the client's first bytes (its ClientHello) and then acts out MODE, logging to LOG:
  fin     send "origin-bytes", half-close (FIN), then read to the client's FIN
  rst     send "origin-bytes", then reset (SO_LINGER 0)
  half    read to the client's FIN, then send "bye" and close
  watch   send "origin-bytes", then read until the client ends: log eof or reset
  silent  accept and read, never send (the app waits; for tunnel-loss rows)
"""
import socket
import struct
import sys
import threading

addr, mode, log = sys.argv[1], sys.argv[2], sys.argv[3]
lock = threading.Lock()


def note(text):
    with lock:
        with open(log, "a") as f:
            f.write(text + "\n")


def read_until_end(conn):
    total = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return "eof", total
            total += len(data)
    except ConnectionResetError:
        return "reset", total


def serve(conn):
    try:
        first = conn.recv(65536)
        note(f"{mode} first={len(first)}")
        if mode == "fin":
            conn.sendall(b"origin-bytes")
            conn.shutdown(socket.SHUT_WR)
            how, n = read_until_end(conn)
            note(f"fin client-{how} after={n}")
        elif mode == "rst":
            conn.sendall(b"origin-bytes")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "half":
            how, n = read_until_end(conn)
            note(f"half client-{how} after={n}")
            conn.sendall(b"bye")
        elif mode == "watch":
            conn.sendall(b"origin-bytes")
            how, n = read_until_end(conn)
            note(f"watch client-{how} after={n}")
        elif mode == "silent":
            how, n = read_until_end(conn)
            note(f"silent client-{how} after={n}")
    except OSError as e:
        note(f"{mode} error={e}")
    finally:
        conn.close()


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((addr, 443))
server.listen(128)
while True:
    c, _ = server.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
