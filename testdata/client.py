#!/usr/bin/env python3
"""Client for the reverse proxy, written from the homework text: send a data
message (type 0) read from a packet file to a privacy policy through the
proxy, and check that the reply carries the SHA1 hex digest of the payload.

Usage: python3 client.py -id ID -revproc PORT -pkt PKTFILE [-count N]
Exit status: 0 if every reply matched, 1 otherwise, 2 on usage errors.
"""
import hashlib
import json
import socket
import sys

USAGE = "Usage: client.py -id ID -revproc PORT -pkt PKTFILE [-count N]"
TIMEOUT = 10  # seconds to wait for a reply; the proxy may silently ignore a message


def usage():
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    opts = {"-count": "1"}
    if len(argv) % 2:
        usage()
    for flag, value in zip(argv[::2], argv[1::2]):
        if flag not in ("-id", "-revproc", "-pkt", "-count"):
            usage()
        opts[flag] = value
    if not all(k in opts for k in ("-id", "-revproc", "-pkt")):
        usage()
    return opts


def address(text):
    """A bare port means localhost; host:port is also accepted."""
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def main():
    opts = parse_args(sys.argv[1:])
    try:
        count = int(opts["-count"])
        proxy = address(opts["-revproc"])
        with open(opts["-pkt"]) as f:
            msg = json.load(f)
    except (ValueError, OSError) as err:
        print(err, file=sys.stderr)
        usage()
    if count < 1:
        usage()
    cid = opts["-id"]
    msg["srcid"] = int(cid) if cid.isdigit() else cid
    base = str(msg.get("payload", ""))
    pp = msg.get("privPoliId")

    ok = True
    with socket.create_connection(proxy, timeout=TIMEOUT) as s:
        for i in range(1, count + 1):
            payload = base if count == 1 else f"{base} {i}"
            msg["payload"], msg["payloadsize"] = payload, len(payload)
            print("Sending message", payload, "to privacy policy", pp,
                  "through reverse proxy running on port", opts["-revproc"], flush=True)
            s.sendall(json.dumps(msg).encode())
            try:
                data = s.recv(2048)
            except socket.timeout:
                print("No response from the reverse proxy", flush=True)
                return 1
            if not data:
                print("The reverse proxy closed the connection", flush=True)
                return 1
            reply = json.loads(data)
            if reply.get("type") in (3, "3"):
                print("Error from the reverse proxy:", reply.get("payload"), flush=True)
                ok = False
                continue
            print("Receiving a response from the server", reply.get("srcid"),
                  "payload:", reply.get("payload"), flush=True)
            if reply.get("payload") == hashlib.sha1(payload.encode()).hexdigest():
                print("SHA1 OK", flush=True)
            else:
                print("SHA1 MISMATCH", flush=True)
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(1)
    except (OSError, ValueError) as err:
        print("Error:", err, file=sys.stderr, flush=True)
        sys.exit(1)
