#!/usr/bin/env python3
"""Seed fuzz/corpus/TARGET/ with real-shaped samples: the bodies and headers of
tests/vectors/*.json, and the JSON payloads written out in the tests and the provider
modules' unit tests (raw strings and json! blocks that are plain JSON). Run from the
repository root; `cargo fuzz cmin` then keeps only the samples that add coverage."""
import glob, hashlib, json, os, re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def vectors(name):
    with open(os.path.join(ROOT, "tests", "vectors", name)) as f:
        return json.load(f)


def json_texts(path):
    """JSON objects and arrays written in a Rust file, as raw strings or json! blocks."""
    text = open(path).read()
    found = [m.group(1) for m in re.finditer(r'r#"(.*?)"#', text, re.S)]
    for m in re.finditer(r"json!\(", text):
        depth, i = 0, m.end()
        start = i
        while i < len(text):
            c = text[i]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        found.append(text[start:i])
    out = []
    for t in found:
        try:
            v = json.loads(t)
        except ValueError:
            continue
        if isinstance(v, (dict, list)):
            out.append(json.dumps(v))
    return out


PROVIDER_FILES = {
    "meta": ["src/meta.rs", "tests/meta_e2e.rs"],
    "sendgrid": ["src/sendgrid.rs", "tests/sendgrid_e2e.rs"],
    "mailgun": ["src/mailgun.rs", "tests/mailgun_e2e.rs"],
    "postmark": ["src/postmark.rs", "tests/postmark_e2e.rs"],
    "ses": ["src/ses.rs", "tests/ses_e2e.rs"],
    "standard_webhooks": ["src/standard_webhooks.rs", "tests/standard_webhooks_e2e.rs"],
    "twilio_json": ["src/twilio.rs", "tests/twilio_e2e.rs"],
    "api_json": ["src/api.rs", "tests/operator_api.rs", "tests/links.rs"],
}

for target, files in PROVIDER_FILES.items():
    for f in files:
        for t in json_texts(os.path.join(ROOT, f)):
            put(target, t)

for name, target in [("meta.json", "meta"), ("sendgrid.json", "sendgrid"),
                     ("mailgun.json", "mailgun"), ("postmark.json", "postmark"),
                     ("sns.json", "ses"), ("standard_webhooks.json", "standard_webhooks")]:
    for v in vectors(name):
        put(target, v["body"])

for v in vectors("twilio.json"):
    if v["headers"].get("Content-Type", "").startswith("application/json"):
        put("twilio_json", v["body"])
    else:
        put("twilio_form", v["body"])
        put("form_decoder", v["body"])
    put("signatures", b"\x00" + v["headers"].get("X-Twilio-Signature", "").encode() + b"\n"
        + v["body"].encode())
    put("signatures", b"\x01" + v["url"].encode())
for v in vectors("meta.json"):
    put("signatures", b"\x02" + v["headers"].get("X-Hub-Signature-256", "").encode() + b"\n\n\n"
        + v["body"].encode())
for v in vectors("sendgrid.json"):
    h = v["headers"]
    put("signatures", ("\x03" + h.get("X-Twilio-Email-Event-Webhook-Signature", "") + "\n"
                       + h.get("X-Twilio-Email-Event-Webhook-Timestamp", "") + "\n\n" + v["body"]).encode())
for v in vectors("standard_webhooks.json"):
    h = v["headers"]
    put("signatures", ("\x04" + h.get("svix-id", "") + "\n" + h.get("svix-timestamp", "") + "\n"
                       + h.get("svix-signature", "") + "\n" + v["body"]).encode())
for v in vectors("mailgun.json"):
    try:
        s = json.loads(v["body"])["signature"]
        put("signatures", ("\x05" + str(s["timestamp"]) + "\n" + s["token"] + "\n"
                           + s["signature"]).encode())
    except (ValueError, KeyError, TypeError):
        pass
for v in vectors("postmark.json"):
    put("signatures", b"\x06" + v["headers"].get("Authorization", "").encode())
for v in vectors("sns.json"):
    put("signatures", ("\x07" + v["signing_cert_url"] + "\nsns.us-east-1.amazonaws.com\n"
                       "sns.*.amazonaws.com\n" + v["signing_cert_pem"]).encode())

for s in ["+14155552671", "whatsapp:+14155552671", "tel:+1 (415) 555-2671", "0044 20 7946 0958",
          "Alice@Example.COM", " bob@example.org ", "1234567890:9876543210", "US.13491208655302741918",
          "sms:+447700900123", "mailto:x@y.z", "+", "@", "ü@例え.jp"]:
    put("address", s)

for s in ["form=preferences&scope=email&choice=all", "a=1&a=2&b=%20x+y", "%ZZ", "=&&=",
          "hub.mode=subscribe&hub.verify_token=verify-token-1&hub.challenge=1158201444"]:
    put("form_decoder", s)
    put("meta", s)

put("link_token", "AQ" * 20)
put("link_token", b"\x01" + bytes(8) + b"\x06\x00\x00\x00\x00\x04spr1")
put("link_token", b"\x00" + bytes(8) + b"\x00\x01\x2a\x00\x00\x00")

for s in ['{"channel": "sms", "addresses": ["+14155552671", "bad"]}',
          '{"state": "permanent", "reason": "asked", "actor": "ops"}',
          '{"actor": "ops", "evidence": {"agreed": "texts", "captured_at": "2026-01-01T00:00:00Z", "method": "form", "reference": "F-1"}}',
          '{"addresses": ["+14155552671", "alice@example.com", "1:2"]}',
          '{"address": "alice@example.com", "scope": "email", "campaign": "spring", "expires_in": "30d"}',
          '{"address": "+14155552671", "scope": "all", "expires_in": "1m"}', ""]:
    put("api_json", s)

for target in ["twilio_form", "twilio_json", "meta", "sendgrid", "mailgun", "postmark", "ses",
               "standard_webhooks", "form_decoder", "api_json", "address", "link_token",
               "signatures"]:
    d = os.path.join(CORPUS, target)
    print(target, len(os.listdir(d)) if os.path.isdir(d) else 0)
