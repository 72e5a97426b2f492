#!/usr/bin/env python3
"""stdio side of the scripted fake middleware (tests/support/src/fakemw.rs).

greyproxyd spawns this as a `--middleware-cmd`; it connects back over TCP to the test's
listener and relays bytes exactly: stdin -> socket, socket -> stdout. The script itself never
speaks the middleware protocol; the test does, through the socket.

Usage: fakemw_relay.py HOST:PORT [options]

Before relaying it sends one line to the test: a JSON object with its pid, process group,
environment and (with --grandchild) the grandchild's pid and port.

Options:
  --banner TEXT     write TEXT + "\\n" to stdout before relaying (a non-protocol line)
  --stderr TEXT     write TEXT + "\\n" to stderr at start (repeatable); an empty TEXT writes a
                    blank line
  --grandchild      spawn a grandchild (same process group) that listens on a loopback port
  --ignore-eof      keep running after stdin reaches EOF (the socket is still half-closed)
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

GRANDCHILD = r"""
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
sys.stdout.write("%d\n" % s.getsockname()[1])
sys.stdout.flush()
while True:
    time.sleep(3600)
"""


def main():
    args = sys.argv[1:]
    if not args:
        sys.stderr.write("usage: fakemw_relay.py HOST:PORT [options]\n")
        sys.exit(2)
    host, port = args[0].rsplit(":", 1)
    banner = None
    stderr_lines = []
    grandchild = False
    ignore_eof = False
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--banner":
            banner = args[i + 1]
            i += 2
        elif a == "--stderr":
            stderr_lines.append(args[i + 1])
            i += 2
        elif a == "--grandchild":
            grandchild = True
            i += 1
        elif a == "--ignore-eof":
            ignore_eof = True
            i += 1
        else:
            sys.stderr.write("fakemw_relay: unknown option %r\n" % a)
            sys.exit(2)

    meta = {"pid": os.getpid(), "pgid": os.getpgrp(), "env": dict(os.environ)}
    if grandchild:
        gc = subprocess.Popen(
            [sys.executable, "-c", GRANDCHILD],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        meta["grandchild_pid"] = gc.pid
        meta["grandchild_port"] = int(gc.stdout.readline().strip())

    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall((json.dumps(meta) + "\n").encode())

    for line in stderr_lines:
        os.write(2, (line + "\n").encode())
    if banner is not None:
        os.write(1, (banner + "\n").encode())

    def stdin_to_socket():
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                sock.sendall(data)
            except OSError:
                break
        # The proxy closed our stdin: tell the test (it sees EOF on the socket).
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if ignore_eof:
            while True:
                time.sleep(3600)
        os._exit(0)

    threading.Thread(target=stdin_to_socket, daemon=True).start()

    while True:
        try:
            data = sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            break
        view = memoryview(data)
        while view:
            try:
                n = os.write(1, view)
            except OSError:
                os._exit(0)
            view = view[n:]
    # The test closed its side: close stdout so the proxy sees EOF.
    if ignore_eof:
        os.close(1)
        while True:
            time.sleep(3600)
    os._exit(0)


if __name__ == "__main__":
    main()
