#!/usr/bin/env python3
"""Pool server for the reverse proxy, written from the homework text and the
server-pool tutorial: register with the proxy (type "1"), then answer every
data message (type 0) with the SHA1 hex digest of its payload (type "2").

Usage: python3 server.py -id ID -pp PPID -listen LPORT -revproc RPPORT
"""
import hashlib
import json
import signal
import socket
import sys
import threading

USAGE = "Usage: server.py -id ID -pp PPID -listen LPORT -revproc RPPORT"


def parse_args(argv, names):
    """Tutorial-style option check: every option given once, each with a value."""
    opts = {}
    if len(argv) % 2:
        usage()
    for flag, value in zip(argv[::2], argv[1::2]):
        if flag not in names or flag in opts:
            usage()
        opts[flag] = value
    if len(opts) != len(names):
        usage()
    return opts


def usage():
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def address(text):
    """A bare port means localhost; host:port is also accepted."""
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def on_new_client(conn, server_id):
    with conn:
        while True:
            data = conn.recv(2048)
            if not data:
                break
            try:
                msg = json.loads(data)
            except ValueError:
                print("Ignoring a malformed message", flush=True)
                continue
            if not isinstance(msg, dict) or msg.get("type") not in (0, "0"):
                continue
            payload = str(msg.get("payload", ""))
            digest = hashlib.sha1(payload.encode()).hexdigest()
            print("Received a message from client", msg.get("srcid"), "payload:", payload, flush=True)
            print("Sending a response to the client", msg.get("srcid"), "payload:", digest, flush=True)
            reply = {"type": "2", "srcid": str(server_id), "destid": msg.get("srcid"),
                     "payloadsize": len(digest), "payload": digest}
            conn.sendall(json.dumps(reply).encode())


def main():
    opts = parse_args(sys.argv[1:], ("-id", "-pp", "-listen", "-revproc"))
    try:
        listen_port = int(opts["-listen"])
        proxy = address(opts["-revproc"])
    except ValueError:
        usage()

    # Bind and listen before registering so the proxy can forward at once.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", listen_port))
    s.listen(10)
    port = s.getsockname()[1]

    print("Server running with id", opts["-id"], flush=True)
    print("Server serving privacy policy", opts["-pp"], flush=True)
    print("Listening on port", port, flush=True)
    print("Connecting to the reverse proxy on port", opts["-revproc"], flush=True)

    # Short-lived registration connection, tutorial style (every field a string).
    setup = {"type": "1", "id": str(opts["-id"]), "privPolyId": str(opts["-pp"]),
             "listenport": str(port)}
    try:
        with socket.create_connection(proxy) as rp:
            rp.sendall(json.dumps(setup).encode())
    except OSError as err:
        print("Cannot reach the reverse proxy:", err, file=sys.stderr, flush=True)
        sys.exit(1)

    while True:
        conn, _ = s.accept()
        threading.Thread(target=on_new_client, args=(conn, opts["-id"]), daemon=True).start()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
