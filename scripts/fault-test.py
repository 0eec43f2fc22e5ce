#!/usr/bin/env python3
"""The fault test of SPEC section 12 (issue 7), Python 3.11 standard library only.

Starts a redis-server (append-only, appendfsync always) and the dndgate binary, sends a
steady load of signed Twilio inbound STOP webhooks with known, distinct content (one
MessageSid and one phone number per event, so each event makes exactly one record and
one audit entry), and meanwhile:

  - kills redis-server with SIGKILL and restarts it, twice;
  - kills the gateway with SIGKILL and restarts it, once.

Every event is sent once; the generator keeps which got a 2xx and which got an error
(an error status, a reset or a refused connection). At the end it waits for the spool
to drain and checks Redis: every acknowledged event applied exactly once (its record
and one audit entry), and no errored event half-applied (a record without its audit
entry or the reverse).

Events out: the script also runs a receiver (a stdlib HTTP server in a thread) for an
endpoint of tenant acme. It verifies every request's Standard Webhooks signature and
keeps (webhook-id, data.event_id, data.channel, data.address). At the end it waits (at
most 60 s) until every acknowledged event's dnd.enabled event has arrived and the
endpoint's consumer groups have nothing left, and counts deliveries: lost (an
acknowledged STOP whose event never arrived), doubled (one change under two different
event ids: a receiver cannot deduplicate that), resent (the same id more than once:
allowed, at least once) and bad signatures.

Prints the numbers; exits 1 when any event was lost or applied twice, any delivery was
lost or doubled, or any signature failed.

Usage: scripts/fault-test.py --bin target/debug/dndgate [--seconds 24] [--workers 8]
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TOKEN = "fault-test-twilio-token"
ACCOUNT = "AC00000000000000000000000000000000"
PUBLIC_URL = "https://hooks.example.com"
PATH = "/webhooks/twilio/acme"
# The endpoint's signing secret (Standard Webhooks: base64 after "whsec_").
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENDPOINT = "fault"
# A signature's timestamp may be this far from the receiver's clock (as the library).
TOLERANCE_S = 5 * 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    mac = hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def event(n):
    sid = "SM%032d" % n
    phone = "+1555%07d" % n
    params = {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "Body": "STOP",
        "From": phone,
        "MessageSid": sid,
        "NumMedia": "0",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": "+15017122661",
    }
    return sid, phone, params


# --- a small RESP client, enough for HGET/XRANGE/PING ---------------------------------


class Resp:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()


# --- the events-out receiver -----------------------------------------------------------


def verify(headers, body):
    """Does the request carry a valid Standard Webhooks signature for SECRET?"""
    wid = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not (wid and ts and sigs):
        return False
    try:
        if abs(time.time() - int(ts)) > TOLERANCE_S:
            return False
    except ValueError:
        return False
    key = base64.b64decode(SECRET[len("whsec_"):])
    signed = b"%s.%s.%s" % (wid.encode(), ts.encode(), body)
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for sig in sigs.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return True
    return False


class Receiver:
    """Keeps every verified delivery as (webhook-id, type, event_id, channel, address);
    answers 401 to a request whose signature fails (and counts it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []
        self.bad = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                ok = verify(self.headers, body)
                row = None
                if ok:
                    try:
                        event = json.loads(body)
                        data = event["data"]
                        row = (self.headers["webhook-id"], event["type"],
                               data["event_id"], data["channel"], data["address"])
                        ok = event["id"] == self.headers["webhook-id"]
                    except (ValueError, KeyError, TypeError):
                        ok = False
                with receiver.lock:
                    if ok:
                        receiver.deliveries.append(row)
                    else:
                        receiver.bad.append((dict(self.headers), body[:200]))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A connection the SIGKILLed gateway left half-way is expected.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.deliveries), len(self.bad)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def groups_finished(port):
    """Has the endpoint's group finished every entry of every acme shard (nothing
    pending, nothing after its last-delivered id)? False while Redis cannot say."""
    try:
        r = Resp(port)
    except OSError:
        return False
    try:
        for shard in "0123456789abcdef":
            key = "dnd:{acme:%s}:audit" % shard
            mine = None
            for g in r.call("XINFO", "GROUPS", key):
                g = dict(zip(g[::2], g[1::2]))
                if g["name"] == "out:" + ENDPOINT:
                    mine = g
            if mine is None or mine["pending"] != 0:
                return False
            if r.call("XRANGE", key, "(" + mine["last-delivered-id"], "+", "COUNT", 1):
                return False
        return True
    except (OSError, RuntimeError):
        return False
    finally:
        r.close()


def wait_delivered(receiver, redis_port, want, timeout):
    """Wait until every event id in `want` has a dnd.enabled delivery and the groups are
    done, for at most `timeout` seconds; whether it finished."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        deliveries, _ = receiver.snapshot()
        got = {d[2] for d in deliveries if d[1] == "dnd.enabled"}
        if want <= got and groups_finished(redis_port):
            return True
        time.sleep(0.2)
    return False


# --- processes ------------------------------------------------------------------------


class Redis:
    def __init__(self, port, data_dir, log):
        self.port, self.dir, self.log, self.proc = port, data_dir, log, None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--maxmemory-policy", "noeviction", "--dir", self.dir],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                r = Resp(self.port)
                pong = r.call("PING")
                r.close()
                if pong == "PONG":
                    return
            except (OSError, RuntimeError):
                pass  # not listening yet, or LOADING
            time.sleep(0.02)
        raise SystemExit("fault test: redis-server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Gateway:
    def __init__(self, binary, config, log):
        self.binary, self.config, self.log, self.proc = binary, config, log, None

    def start(self, port):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config],
            stdout=self.log, stderr=self.log, env=dict(os.environ, DNDGATE_LOG="info"))
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("fault test: the gateway did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


# --- load -----------------------------------------------------------------------------


class Load:
    def __init__(self, port, workers):
        self.port, self.workers = port, workers
        self.lock = threading.Lock()
        self.next = 0
        self.acked, self.errors = [], []
        self.stop = threading.Event()

    def take(self):
        with self.lock:
            self.next += 1
            return self.next

    def worker(self):
        conn = None
        while not self.stop.is_set():
            n = self.take()
            sid, phone, params = event(n)
            body = urllib.parse.urlencode(params)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(PUBLIC_URL + PATH, params),
            }
            ok = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", PATH, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = 200 <= resp.status < 300
                why = resp.status
            except (OSError, http.client.HTTPException) as e:
                why = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                (self.acked if ok else self.errors).append((n, sid, phone, why))
            if not ok:
                time.sleep(0.05)  # the gateway is down: do not spin
            else:
                time.sleep(0.002)  # a steady load, not a flood


def wait_drained(port, timeout):
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            last = conn.getresponse().read().decode()
            conn.close()
            if "redis: ok" in last and "spool: records=0 " in last:
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("fault test: the spool did not drain:\n" + last)


def record_key(phone):
    h = hashlib.sha1(phone.encode()).hexdigest()
    return "dnd:{acme:%s}:%s" % (h[0], h[1:4]), "sms:" + phone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=float, default=24)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="dndgate-fault-")
    log = open(os.path.join(work, "processes.log"), "ab")
    redis_port, gw_port, admin_port = free_port(), free_port(), free_port()
    receiver = Receiver()
    delays = ", ".join(['"250ms"'] * 20)
    config = os.path.join(work, "dndgate.toml")
    with open(config, "w") as f:
        f.write(f"""listen = "127.0.0.1:{gw_port}"
admin_listen = "127.0.0.1:{admin_port}"
public_url = "{PUBLIC_URL}"
redis_url = "redis://127.0.0.1:{redis_port}/"
redis_timeout = "1s"
spool_dir = "spool"

[events_out]
retry_delays = [{delays}]
timeout = "2s"

[tenants.acme]
api_tokens = ["fault-test-api-token"]
sms_opt_out_also = []

[tenants.acme.twilio]
auth_tokens = ["{TOKEN}"]
account_sids = ["{ACCOUNT}"]

[[tenants.acme.endpoints]]
id = "{ENDPOINT}"
url = "http://127.0.0.1:{receiver.port}/dnd"
secrets = ["{SECRET}"]
""")
    os.makedirs(os.path.join(work, "redis"))
    redis = Redis(redis_port, os.path.join(work, "redis"), log)
    gateway = Gateway(os.path.abspath(args.bin), config, log)
    redis.start()
    gateway.start(gw_port)

    load = Load(gw_port, args.workers)
    threads = [threading.Thread(target=load.worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    started = time.time()
    s = args.seconds

    def at(fraction):
        time.sleep(max(0.0, started + s * fraction - time.time()))

    def say(what):
        with load.lock:
            n = load.next
        print(f"  {time.time() - started:5.1f}s  {what}  (events so far: {n})", flush=True)

    at(0.12); redis.kill(); say("redis-server SIGKILL")
    at(0.25); redis.start(); say("redis-server restarted")
    at(0.42); gateway.kill(); say("gateway SIGKILL")
    at(0.50); gateway.start(gw_port); say("gateway restarted")
    at(0.62); redis.kill(); say("redis-server SIGKILL")
    at(0.75); redis.start(); say("redis-server restarted")
    at(1.0)
    load.stop.set()
    for t in threads:
        t.join()
    say("load stopped")
    try:
        ready = wait_drained(admin_port, 90)  # the detailed /readyz: admin listener
    except SystemExit:
        gateway.kill()
        redis.kill()
        print(f"logs in {work}")
        raise
    say("spool drained")
    acked_sids = {e[1] for e in load.acked}
    finished = wait_delivered(receiver, redis_port, acked_sids, 60)
    say("events out delivered" if finished else "events out NOT all delivered within 60 s")
    deliveries, bad_signatures = receiver.snapshot()
    receiver.stop()

    # Check Redis against what the generator kept.
    r = Resp(redis_port)
    audit = {}
    for shard in "0123456789abcdef":
        for _id, fields in r.call("XRANGE", "dnd:{acme:%s}:audit" % shard, "-", "+"):
            entry = dict(zip(fields[::2], fields[1::2]))
            audit[entry["event_id"]] = audit.get(entry["event_id"], 0) + 1

    def applied(phone):
        key, field = record_key(phone)
        value = r.call("HGET", key, field)
        return value is not None and value.startswith("P|")

    sent = len(load.acked) + len(load.errors)
    lost = [e for e in load.acked if audit.get(e[1], 0) == 0 or not applied(e[2])]
    duplicates = [k for k, v in audit.items() if v > 1]
    applied_acked = len(load.acked) - len(lost)
    errored_applied = 0
    half = []
    for n, sid, phone, why in load.errors:
        has_audit, has_record = audit.get(sid, 0) > 0, applied(phone)
        if has_audit != has_record:
            half.append((sid, why))
        elif has_record:
            errored_applied += 1
    known = {e[1] for e in load.acked} | {e[1] for e in load.errors}
    unknown = [k for k in audit if k not in known]
    r.close()

    # Deliveries: per change (event_id, channel, address, type), the ids it came under.
    ids_of = {}
    times_of = {}
    for wid, kind, event_id, channel, address in deliveries:
        ids_of.setdefault((event_id, channel, address, kind), set()).add(wid)
        times_of[wid] = times_of.get(wid, 0) + 1
    enabled = {k[0] for k in ids_of if k[3] == "dnd.enabled"}
    out_lost = sorted(acked_sids - enabled)
    doubled = sorted((k, sorted(v)) for k, v in ids_of.items() if len(v) > 1)
    resent = {wid: n for wid, n in times_of.items() if n > 1}
    out_unknown = sorted(k for k in ids_of if k[0] not in known)

    code = gateway.term()
    print()
    print("fault test: redis killed and restarted twice, gateway SIGKILLed and restarted once")
    print(f"  events sent:                {sent}")
    print(f"  acknowledged (2xx):         {len(load.acked)}")
    print(f"  applied (of acknowledged):  {applied_acked}")
    print(f"  lost:                       {len(lost)}")
    print(f"  duplicates:                 {len(duplicates)}")
    print(f"  errors (no 2xx):            {len(load.errors)}"
          f"  (of which applied in full anyway: {errored_applied}, half-applied: {len(half)})")
    kinds = {}
    for e in load.errors:
        kinds[str(e[3])] = kinds.get(str(e[3]), 0) + 1
    print("  errors by kind:            ",
          ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "none")
    print(f"  entries for unknown events: {len(unknown)}")
    print(f"  gateway exit on SIGTERM:    {code}")
    print("  /readyz at the end:", ready.strip().replace("\n", "; "))
    redis.kill()
    log.close()
    # How many changes went through the spool, from the gateway's log lines.
    with open(os.path.join(work, "processes.log"), "rb") as f:
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode(errors="replace"))
    replayed = sum(int(m) for m in re.findall(
        r"spooled changes applied to redis applied=(\d+)", text))
    print(f"  replayed from the spool:    {replayed}")
    print("events out (endpoint %r):" % ENDPOINT)
    print(f"  deliveries received:        {len(deliveries)}"
          f"  (distinct event ids: {len(times_of)})")
    print(f"  lost:                       {len(out_lost)}")
    print(f"  doubled (two event ids):    {len(doubled)}")
    print(f"  resent (same id again):     {len(resent)}"
          f"  ({sum(resent.values()) - len(resent)} extra deliveries; allowed)")
    print(f"  bad signatures:             {bad_signatures}")
    print(f"  for unknown events:         {len(out_unknown)}")
    failed = (lost or duplicates or half or unknown or code != 0 or not load.acked
              or out_lost or doubled or bad_signatures or out_unknown)
    if failed:
        print(f"fault test FAILED; logs in {work}")
        for e in lost[:10]:
            print("  lost:", e)
        for d in duplicates[:10]:
            print("  duplicate:", d)
        for h in half[:10]:
            print("  half-applied:", h)
        for e in out_lost[:10]:
            print("  delivery lost:", e)
        for d in doubled[:10]:
            print("  delivery doubled:", d)
        for u in out_unknown[:10]:
            print("  delivery for an unknown event:", u)
        return 1
    if args.keep:
        print(f"  work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("fault test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
