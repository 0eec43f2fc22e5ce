"""A receiver of dndgate's events out, for tests: verifies each delivery with the
official Standard Webhooks library and prints one JSON line per request.

    receiver.py SECRET [--port N] [--fail-first N] [--status N]

--fail-first N answers 500 to the first N tries of each event id, then 200;
--status N answers N to everything (after verification). The first line printed is
{"port": P}; then one line per request: id, try number, whether it verified, the
status answered, and the event (type, channel, address, timestamp).
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

args = argparse.ArgumentParser()
args.add_argument("secret")
args.add_argument("--port", type=int, default=0)
args.add_argument("--fail-first", type=int, default=0)
args.add_argument("--status", type=int, default=200)
opts = args.parse_args()

hook = Webhook(opts.secret)
tries = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        line = {"id": headers.get("webhook-id")}
        try:
            event = hook.verify(body, headers)
            line["verified"] = True
            line["type"] = event["type"]
            line["channel"] = event["data"].get("channel")
            line["address"] = event["data"].get("address")
            line["timestamp"] = event["timestamp"]
            line["body_id"] = event["id"]
            status = opts.status
        except Exception as e:  # the library raises WebhookVerificationError
            line["verified"] = False
            line["error"] = str(e)
            status = 401
        with lock:
            n = tries[line["id"]] = tries.get(line["id"], 0) + 1
        line["try"] = n
        if line["verified"] and n <= opts.fail_first:
            status = 500
        line["status"] = status
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()
        with lock:
            print(json.dumps(line), flush=True)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
