// The ingest job as users do it today in Node: Express, the official Twilio SDK's
// validateRequest and ioredis, run as one worker process per core with node:cluster
// (bench/run.sh), the usual way to use more than one core.
//
// It does the same work per request as dndgate's Twilio road, minus what such handlers
// usually leave out (dedup, audit, consent rules): verify the signature, read the form,
// and on a keyword or an error code write the contact's DND flag in Redis.
"use strict";
const cluster = require("node:cluster");
const os = require("node:os");

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || os.availableParallelism());
  for (let i = 0; i < workers; i++) cluster.fork();
  return;
}

const express = require("express");
const twilio = require("twilio");
const Redis = require("ioredis");

const PUBLIC_URL = process.env.PUBLIC_URL || "https://hooks.example.com";
const TOKEN = process.env.TWILIO_AUTH_TOKEN;
const store = new Redis(process.env.REDIS_URL);
const STOP = new Set(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"]);
const START = new Set(["START", "UNSTOP", "YES"]);
const TEMPORARY = new Set(["30003", "30005", "30006"]);
const PERMANENT = new Set(["30004", "21610"]);
const TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>';

const app = express();
app.use(express.urlencoded({ extended: false }));
app.post("/webhooks/twilio/:tenant", async (req, res) => {
  const url = PUBLIC_URL + req.originalUrl;
  const signature = req.get("X-Twilio-Signature") || "";
  if (!twilio.validateRequest(TOKEN, signature, url, req.body)) {
    return res.status(401).send("bad signature");
  }
  const form = req.body;
  const now = Date.now();
  const key = `dnd:${req.params.tenant}:sms`;
  if (form.Body !== undefined) {
    const word = form.Body.trim().toUpperCase();
    if (STOP.has(word)) await store.hset(key, form.From, `P|${now}||keyword:STOP|twilio`);
    else if (START.has(word)) await store.hdel(key, form.From);
  } else if (TEMPORARY.has(form.ErrorCode)) {
    await store.hset(key, form.To, `T|${now}|${now + 259200000}|twilio:${form.ErrorCode}|twilio`);
  } else if (PERMANENT.has(form.ErrorCode)) {
    await store.hset(key, form.To, `P|${now}||twilio:${form.ErrorCode}|twilio`);
  }
  res.type("text/xml").send(TWIML);
});
app.listen(Number(process.env.PORT || 8092), "127.0.0.1");
