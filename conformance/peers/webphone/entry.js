import * as XMPP from "stanza"; window.XMPP = XMPP;
