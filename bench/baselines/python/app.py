"""The ingest job as users do it today in Python: Flask, the official Twilio SDK's
RequestValidator and redis-py, served by gunicorn (bench/run.sh starts it with one
worker process per core and threads, as Twilio's and gunicorn's docs suggest for I/O-bound
handlers).

It does the same work per request as dndgate's Twilio road, minus what such handlers
usually leave out (dedup, audit, consent rules): verify the signature, read the form,
and on a keyword or an error code write the contact's DND flag in Redis.
"""

import os
import time

import redis
from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator

PUBLIC_URL = os.environ.get("PUBLIC_URL", "https://hooks.example.com")
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
store = redis.Redis.from_url(os.environ["REDIS_URL"])
app = Flask(__name__)

STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START = {"START", "UNSTOP", "YES"}
TEMPORARY = {"30003", "30005", "30006"}
PERMANENT = {"30004", "21610"}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@app.post("/webhooks/twilio/<tenant>")
def twilio_webhook(tenant):
    url = PUBLIC_URL + request.full_path.rstrip("?")
    if not validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(401)
    form = request.form
    now = int(time.time() * 1000)
    body = form.get("Body")
    if body is not None:
        word = body.strip().upper()
        key = f"dnd:{tenant}:sms"
        if word in STOP:
            store.hset(key, form["From"], f"P|{now}||keyword:STOP|twilio")
        elif word in START:
            store.hdel(key, form["From"])
    else:
        code = form.get("ErrorCode")
        if code in TEMPORARY:
            store.hset(f"dnd:{tenant}:sms", form["To"], f"T|{now}|{now + 259200000}|twilio:{code}|twilio")
        elif code in PERMANENT:
            store.hset(f"dnd:{tenant}:sms", form["To"], f"P|{now}||twilio:{code}|twilio")
    return Response(TWIML, mimetype="text/xml")
