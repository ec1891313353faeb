#!/usr/bin/env python3
"""Reverse proxy, written from the homework text and the tutorial series.

Servers register with a setup message (type "1"); clients send data messages
(type "0") which are forwarded round robin to the servers of the requested
privacy policy, each over a new connection, and the reply is sent back.
Like the tutorial's proxy it compares "type" as a string: numeric types are
ignored.

Usage: python3 revproc.py -port PORT
"""
import json
import signal
import socket
import sys
import threading

USAGE = "Usage: revproc.py -port PORT"

lock = threading.Lock()
table = {}    # privacy policy -> list of [server id, host, port]
counter = {}  # privacy policy -> round-robin counter


def usage():
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def register(msg, host):
    sid, pp, port = str(msg.get("id")), str(msg.get("privPolyId")), int(msg.get("listenport"))
    print("Receiving setup message from server id", sid, "privacy policy", pp, "port", port, flush=True)
    with lock:
        servers = table.setdefault(pp, [])
        for entry in servers:
            if entry[0] == sid:  # a server that registers again is replaced in place
                entry[1:] = [host, port]
                break
        else:
            for other in table.values():  # it may have moved from another policy
                other[:] = [e for e in other if e[0] != sid]
            servers.append([sid, host, port])
        counter.setdefault(pp, 0)


def next_server(pp):
    with lock:
        servers = table.get(pp)
        if not servers:
            return None
        entry = servers[counter[pp] % len(servers)]
        counter[pp] += 1
        return list(entry)


def error_reply(srcid, text):
    return json.dumps({"type": "3", "srcid": "proxy", "destid": srcid,
                       "payloadsize": len(text), "payload": text}).encode()


def forward(conn, msg):
    src, pp = msg.get("srcid"), msg.get("privPoliId")
    print("Received a data message from client", src, "privacy policy", pp, "payload:", msg.get("payload"), flush=True)
    server = next_server(pp)
    if server is None:
        conn.sendall(error_reply(src, f"no server for policy {pp}"))
        return
    sid, host, port = server
    print("Forwarding a data message to server id", sid, "payload:", msg.get("payload"), flush=True)
    try:
        with socket.create_connection((host, port)) as s:
            s.sendall(json.dumps(msg).encode())
            reply = s.recv(2048)
    except OSError as err:
        reply = b""
        print("Cannot reach server id", sid, ":", err, flush=True)
    if not reply:
        conn.sendall(error_reply(src, f"server {sid} did not answer"))
        return
    try:
        shown = json.loads(reply).get("payload")
    except (ValueError, AttributeError):
        shown = reply.decode(errors="replace")
    print("Received a data message from server id", sid, "payload:", shown, flush=True)
    print("Forwarding a data message to client id", src, "payload:", shown, flush=True)
    conn.sendall(reply)  # the server's reply bytes, unchanged


def on_new_client(conn, addr):
    role = None  # the first valid message decides: "1" server, "0" client
    with conn:
        while True:
            try:
                data = conn.recv(2048)
            except OSError:
                break
            if not data:
                break  # a server closing its setup connection stays registered
            try:
                msg = json.loads(data)
            except ValueError:
                print("Ignoring a malformed message from", addr, flush=True)
                continue
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind not in ("0", "1") or (role is not None and kind != role):
                print("Ignoring a message of type", repr(kind), "from", addr, flush=True)
                continue
            role = kind
            try:
                if kind == "1":
                    register(msg, addr[0])
                else:
                    forward(conn, msg)
            except (ValueError, TypeError) as err:
                print("Ignoring a bad message from", addr, ":", err, flush=True)
            except OSError:
                break


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
        threading.Thread(target=on_new_client, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
