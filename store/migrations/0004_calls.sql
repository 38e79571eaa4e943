-- v4: call records (mapping.CallRecord, docs/store-calls.md). One row per
-- call, inserted when it starts and updated when it is answered and when it
-- ends; the rows still open at start-up are the calls a crashed stox left
-- behind.

CREATE TABLE calls (
    id        text        PRIMARY KEY,
    direction text        NOT NULL DEFAULT '', -- mapping.XMPPToSIP or mapping.SIPToXMPP
    xmpp_peer text        NOT NULL DEFAULT '', -- JID.String(), full once known
    contact   text        NOT NULL DEFAULT '', -- JID.String() of the SIP party on the XMPP side
    sid       text        NOT NULL DEFAULT '', -- Jingle session id
    sip_peer  text        NOT NULL DEFAULT '', -- the SIP party's URI
    dialog    jsonb,                           -- mapping.DialogRecord, see store.wireCallDialog; NULL before a dialog exists
    codec     text        NOT NULL DEFAULT '',
    started   timestamptz NOT NULL,
    answered  timestamptz,                     -- NULL when never answered
    ended     timestamptz,                     -- NULL while the call is up
    outcome   text        NOT NULL DEFAULT ''
);
-- Recovery at start-up reads the open calls only.
CREATE INDEX calls_open_idx ON calls (started) WHERE ended IS NULL;
-- Statistics count calls started since a time.
CREATE INDEX calls_started_idx ON calls (started);
-- The purge deletes calls that ended before a time.
CREATE INDEX calls_ended_idx ON calls (ended) WHERE ended IS NOT NULL;
