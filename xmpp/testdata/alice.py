# A tiny XMPP client for the Prosody integration test: logs in, sends
# presence, prints READY, then one line per received message:
#   MSG <from> <type> <body>
import asyncio, sys, logging
import slixmpp

logging.basicConfig(level=logging.ERROR)
host, port, jid, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

class C(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, pw)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_msg)
        self.add_event_handler("disconnected", lambda _: sys.exit(0))
    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        print("READY", flush=True)
    def on_msg(self, m):
        print("MSG", m["from"], m["type"], m["body"].replace("\n", "\\n"), flush=True)

c = C()
c.connect((host, port), force_starttls=False, disable_starttls=True)
asyncio.get_event_loop().run_forever()
