#!/usr/bin/env python3
"""flood.py: the attack clients of the fault tier. Opens many connections and holds them
silent until killed (SIGTERM), printing what happened to each in key=value form.

  flood.py tcp HOST PORT --count N            TCP connections that never send a byte
  flood.py tls HOST PORT --count N --cert C --key K --ca CA --sni NAME [--alpn P]
                                              TLS handshakes that complete, then silence

After opening, it waits --settle-s seconds and reports `opened=N reset=R open=O` (O: still
open), then `holding` and holds until killed; every --report-s it reports again.
"""
import argparse
import errno
import os
import select
import signal
import socket
import ssl
import sys
import time


def alive(sock):
    """False if the peer reset or closed the connection."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return True
        data = sock.recv(1, socket.MSG_PEEK) if not isinstance(sock, ssl.SSLSocket) else sock.recv(1)
        return bool(data)
    except ssl.SSLWantReadError:
        return True  # only TLS records such as session tickets arrived
    except (ConnectionResetError, ssl.SSLError, OSError):
        return False


def open_tcp(args):
    socks, failed = [], 0
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((args.host, args.port))
        if err not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        socks.append(s)
    # wait for the connects to finish
    deadline = time.time() + 10
    pending = list(socks)
    while pending and time.time() < deadline:
        poller = select.poll()  # select() cannot take descriptors past 1024
        by_fd = {}
        for s in pending:
            poller.register(s, select.POLLOUT)
            by_fd[s.fileno()] = s
        done = {by_fd[fd] for fd, _ in poller.poll(1000)}
        pending = [s for s in pending if s not in done]
    good = []
    for s in socks:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and s not in pending:
            good.append(s)
        else:
            failed += 1
            s.close()
    return good, failed


def open_tls(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    if args.alpn:
        ctx.set_alpn_protocols([args.alpn])
    socks, failed = [], 0
    for _ in range(args.count):
        try:
            raw = socket.create_connection((args.host, args.port), timeout=5)
        except OSError:
            failed += 1
            continue
        try:
            s = ctx.wrap_socket(raw, server_hostname=args.sni)
            s.setblocking(False)
            socks.append(s)
        except (ssl.SSLError, OSError):
            failed += 1
            raw.close()
    return socks, failed


def main():
    # Hold nothing inherited (a test runner's lock file, say) beyond stdin/out/err.
    os.closerange(3, 65536)
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["tcp", "tls"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--sni")
    p.add_argument("--alpn")
    p.add_argument("--settle-s", type=float, default=1.0)
    p.add_argument("--report-s", type=float, default=5.0)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.time()
    socks, failed = open_tcp(args) if args.mode == "tcp" else open_tls(args)
    print(f"connected={len(socks)} failed={failed} ms={int((time.time() - started) * 1000)}", flush=True)
    time.sleep(args.settle_s)
    while True:
        still = [s for s in socks if alive(s)]
        print(f"opened={len(socks)} reset={len(socks) - len(still)} open={len(still)} failed={failed}", flush=True)
        print("holding", flush=True)
        time.sleep(args.report_s)


if __name__ == "__main__":
    main()
