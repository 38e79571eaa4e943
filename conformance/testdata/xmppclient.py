#!/usr/bin/python3
"""Scripted XMPP client for the stox conformance tests (driven by
conformance/peers.StartXMPPClient). Run with Debian's /usr/bin/python3 and
python3-slixmpp.

    xmppclient.py --jid alice@localhost/test --password pw --host 127.0.0.1 --port 5222
                  [--auto-error CONDITION:TYPE] [--subscriptions accept|approve|decline]

Logs in without TLS, fetches the roster, sends initial presence, then prints
{"kind":"ready","jid":FULLJID}. Every received message and presence (except
the echo of its own presence) is printed as one JSON line:
  {"kind":"message"|"presence","id","from","to","type","body","subject",
   "thread","lang","error_condition","error_type","error_text","show",
   "status","xml"}
"type" is the raw type attribute ("" when absent).

Commands, one JSON object per line on stdin; each gets an answer line with
the same "seq" (the Go side routes it apart from received stanzas):
  {"cmd":"send","to","body","type"(default chat),"id","subject","thread","lang"}
      -> {"kind":"ack","seq","id"}
  {"cmd":"send_raw","xml":"<message .../>"} -> ack
  {"cmd":"presence","to","type","show","status"} -> ack
  {"cmd":"iq","to","type"(get),"xml":"<query xmlns=.../>","id","timeout"}
      -> {"kind":"iq", ...stanza fields of the result or error..., "xml"}
         or {"kind":"iq","type":"timeout"}
  {"cmd":"reply_error","to","id","condition","type"(cancel),"text","stanza"(message)}
      -> ack; sends <message type="error" id=ID to=TO><error type=..><COND/></error></message>
  {"cmd":"quit"} -> disconnects and exits 0 (also on stdin EOF).
With --auto-error CONDITION:TYPE every received non-error message is answered
by such an error message (same id, to = its from), after being printed.
--subscriptions says what happens to a subscription request (it is printed
in every case): accept (default) approves it and subscribes back, approve
only approves it (<presence type='subscribed'/>), decline refuses it
(<presence type='unsubscribed'/>, RFC 6121 §3.2).
"""
import argparse
import asyncio
import json
import sys
import threading
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj, ensure_ascii=False)
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def text_of(xml, name, ns="jabber:client"):
    el = xml.find("{%s}%s" % (ns, name))
    return el.text or "" if el is not None else ""


def describe(kind, st):
    x = st.xml
    d = {
        "kind": kind,
        "id": x.get("id", ""),
        "from": x.get("from", ""),
        "to": x.get("to", ""),
        "type": x.get("type", ""),
        "lang": x.get(XML_LANG, ""),
        "xml": str(st),
    }
    for name in ("body", "subject", "thread", "show", "status"):
        d[name] = text_of(x, name)
    err = x.find("{jabber:client}error")
    d["error_condition"] = d["error_type"] = d["error_text"] = ""
    if err is not None:
        d["error_type"] = err.get("type", "")
        for c in err:
            if c.tag.startswith("{%s}" % STANZAS):
                local = c.tag.split("}", 1)[1]
                if local == "text":
                    d["error_text"] = c.text or ""
                elif not d["error_condition"]:
                    d["error_condition"] = local
    return d


def error_element(condition, typ, text=""):
    err = ET.Element("{jabber:client}error", {"type": typ or "cancel"})
    ET.SubElement(err, "{%s}%s" % (STANZAS, condition or "undefined-condition"))
    if text:
        t = ET.SubElement(err, "{%s}text" % STANZAS)
        t.text = text
    return err


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        # slixmpp: auto_authorize False answers unsubscribed (RFC 6121 §3.2).
        self.auto_authorize = args.subscriptions != "decline"
        self.auto_subscribe = args.subscriptions == "accept"
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"), self.on_message))
        self.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"), self.on_presence))
        self.quitting = False

    async def on_start(self, _):
        try:
            await self.get_roster(timeout=5)
        except Exception as e:  # roster is optional
            print("roster:", e, file=sys.stderr)
        self.send_presence()
        # Round trip to the server: once answered, the server has processed
        # our initial presence, so messages sent to us right after "ready"
        # are delivered (not bounced as to an unavailable resource).
        iq = self.make_iq_get(ito=self.boundjid.domain)
        iq.xml.append(ET.Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=5)
        except (IqError, IqTimeout) as e:
            print("ping:", e, file=sys.stderr)
        emit({"kind": "ready", "jid": str(self.boundjid)})
        threading.Thread(target=self.read_stdin, args=(asyncio.get_event_loop(),), daemon=True).start()

    def on_failed_auth(self, _):
        emit({"kind": "failed_auth"})
        sys.stdout.flush()
        sys.exit(2)

    def on_disconnected(self, reason):
        emit({"kind": "disconnected", "reason": str(reason)})
        if self.quitting:
            asyncio.get_event_loop().stop()

    def on_message(self, m):
        emit(describe("message", m))
        if self.args.auto_error and m.xml.get("type", "") != "error":
            cond, _, typ = self.args.auto_error.partition(":")
            r = self.make_message(mto=m.xml.get("from"), mtype="error")
            r["id"] = m.xml.get("id", "")
            r.xml.append(error_element(cond, typ or "cancel"))
            r.send()

    def on_presence(self, p):
        if p.xml.get("from", "") == str(self.boundjid):
            return  # echo of our own presence
        emit(describe("presence", p))

    def read_stdin(self, loop):
        for line in sys.stdin:
            line = line.strip()
            if line:
                loop.call_soon_threadsafe(self.command, line)
        loop.call_soon_threadsafe(self.command, '{"cmd":"quit"}')

    def command(self, line):
        try:
            c = json.loads(line)
        except ValueError as e:
            emit({"kind": "ack", "seq": -1, "error": "bad json: %s" % e})
            return
        seq = c.get("seq", 0)
        try:
            cmd = c.get("cmd")
            if cmd == "send":
                m = self.make_message(mto=c["to"], mbody=c.get("body") or None,
                                      msubject=c.get("subject") or None, mtype=c.get("type") or "chat")
                if c.get("id"):
                    m["id"] = c["id"]
                elif not m["id"]:
                    m["id"] = self.new_id()
                if c.get("thread"):
                    m["thread"] = c["thread"]
                if c.get("lang"):
                    m.xml.set(XML_LANG, c["lang"])
                m.send()
                emit({"kind": "ack", "seq": seq, "id": m["id"]})
            elif cmd == "send_raw":
                self.send_raw(c["xml"])
                emit({"kind": "ack", "seq": seq})
            elif cmd == "presence":
                p = self.make_presence(pto=c.get("to") or None, ptype=c.get("type") or None,
                                       pshow=c.get("show") or None, pstatus=c.get("status") or None)
                p.send()
                emit({"kind": "ack", "seq": seq})
            elif cmd == "reply_error":
                kind = c.get("stanza") or "message"
                if kind == "iq":
                    r = self.make_iq(ito=c["to"], itype="error")
                else:
                    r = self.make_message(mto=c["to"], mtype="error")
                r["id"] = c.get("id", "")
                r.xml.append(error_element(c.get("condition"), c.get("type"), c.get("text", "")))
                r.send()
                emit({"kind": "ack", "seq": seq, "id": c.get("id", "")})
            elif cmd == "iq":
                asyncio.ensure_future(self.do_iq(c, seq))
            elif cmd == "quit":
                self.quitting = True
                self.disconnect(wait=0.5)
                asyncio.get_event_loop().call_later(1, asyncio.get_event_loop().stop)
            else:
                emit({"kind": "ack", "seq": seq, "error": "unknown cmd %r" % cmd})
        except Exception as e:
            emit({"kind": "ack", "seq": seq, "error": repr(e)})

    async def do_iq(self, c, seq):
        iq = self.make_iq(ito=c.get("to") or None, itype=c.get("type") or "get")
        if c.get("id"):
            iq["id"] = c["id"]
        if c.get("xml"):
            iq.xml.append(ET.fromstring(c["xml"]))
        try:
            res = await iq.send(timeout=float(c.get("timeout") or 10))
        except IqError as e:
            res = e.iq
        except IqTimeout:
            emit({"kind": "iq", "seq": seq, "type": "timeout", "id": iq["id"]})
            return
        d = describe("iq", res)
        d["seq"] = seq
        emit(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--auto-error", default="")
    ap.add_argument("--subscriptions", default="accept", choices=("accept", "approve", "decline"))
    args = ap.parse_args()
    xmpp = Client(args)
    xmpp.connect((args.host, args.port), force_starttls=False, disable_starttls=True)
    loop = asyncio.get_event_loop()
    loop.run_forever()


if __name__ == "__main__":
    main()
