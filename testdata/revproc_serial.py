#!/usr/bin/env python3
"""Reverse proxy that serves one connection at a time, written from the
homework text as some are: accept a connection, read messages from it until
the peer closes it, then accept the next. Setup messages (type 1) fill the
message switching table; a data message (type 0) goes round robin to a server
of its privacy policy over a new connection to the server's listen port, and
the server's reply is sent back to the client.

It never answers a setup message, so a server that keeps its setup connection
open waiting for an answer keeps every other peer waiting.

Usage: python3 revproc_serial.py -port PORT
"""
import json
import signal
import socket
import sys

USAGE = "Usage: revproc_serial.py -port PORT"

table = {}    # privacy policy -> list of (server id, host, port)
counter = {}  # privacy policy -> round-robin counter
decoder = json.JSONDecoder()


def usage():
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def messages(conn):
    """Yield the JSON objects the peer sends until it closes the connection."""
    buf = ""
    while True:
        data = conn.recv(2048)
        if not data:
            return
        buf += data.decode()
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                msg, end = decoder.raw_decode(buf)
            except ValueError:
                break  # the rest of the object is still on its way
            buf = buf[end:]
            yield msg


def register(msg, host):
    sid, pp, port = str(msg["id"]), str(msg["privPolyId"]), int(msg["listenport"])
    print("Receiving setup message from server id", sid, "privacy policy", pp, "port", port, flush=True)
    table.setdefault(pp, []).append((sid, host, port))
    counter.setdefault(pp, 0)


def error_reply(srcid, text):
    return {"type": 3, "srcid": "proxy", "destid": srcid, "payloadsize": len(text), "payload": text}


def forward(msg):
    src, pp = msg.get("srcid"), msg.get("privPoliId")
    print("Received a data message from client", src, "privacy policy", pp, "payload:", msg.get("payload"), flush=True)
    servers = table.get(pp)
    if not servers:
        return error_reply(src, "no server for policy %s" % pp)
    sid, host, port = servers[counter[pp] % len(servers)]
    counter[pp] += 1
    print("Forwarding a data message to server id", sid, "payload:", msg.get("payload"), flush=True)
    try:
        with socket.create_connection((host, port)) as s:
            s.sendall(json.dumps(msg).encode())
            reply = next(messages(s), None)
    except OSError as err:
        print("Cannot reach server id", sid, ":", err, flush=True)
        reply = None
    if reply is None:
        return error_reply(src, "server %s did not answer" % sid)
    print("Received a data message from server id", sid, "payload:", reply.get("payload"), flush=True)
    print("Forwarding a data message to client id", src, "payload:", reply.get("payload"), flush=True)
    return reply


def serve(conn, addr):
    with conn:
        for msg in messages(conn):
            kind = str(msg.get("type")) if isinstance(msg, dict) else None
            try:
                if kind == "1":
                    register(msg, addr[0])
                elif kind == "0":
                    conn.sendall(json.dumps(forward(msg)).encode())
                else:
                    print("Ignoring a message of type", kind, flush=True)
            except (KeyError, ValueError, TypeError) as err:
                print("Ignoring a bad message from", addr, ":", err, flush=True)


def main():
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "-port":
        usage()
    try:
        port = int(args[1])
    except ValueError:
        usage()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(50)
    print("Running the reverse proxy on port", s.getsockname()[1], flush=True)
    while True:
        conn, addr = s.accept()
        try:
            serve(conn, addr)  # one connection at a time, until the peer closes it
        except OSError as err:
            print("Connection from", addr, "failed:", err, flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
