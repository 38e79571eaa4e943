-- v3: presence state in the shape of the presence.Store contract
-- (docs/presence-contract.md). The first-shape v2 tables (authorizations,
-- notification_dialogs, presence) were never read or written by any
-- release: authorization and the dialog now live in one subscriptions row
-- per (kind, bare JID, AOR), and last known presence is keyed by the full
-- JID. They are dropped rather than left behind, so that there is one
-- presence schema, not two.

DROP TABLE IF EXISTS authorizations;
DROP TABLE IF EXISTS notification_dialogs;
DROP TABLE IF EXISTS presence;

-- One watcher/presentity pair (mapping.Subscription).
CREATE TABLE subscriptions (
    kind       text        NOT NULL, -- mapping.SIPWatcher or mapping.XMPPWatcher
    jid        text        NOT NULL, -- bare JID, the key (JID.Bare().String())
    aor        text        NOT NULL, -- sip:user@domain
    jid_local  text        NOT NULL DEFAULT '', -- the JID parts as given, so they
    jid_domain text        NOT NULL,            -- read back exactly
    state      text        NOT NULL DEFAULT '',
    dialog     jsonb       NOT NULL, -- mapping.Dialog, see store.wireDialog
    last_body  bytea,                -- NULL when empty
    updated    timestamptz,          -- NULL when zero
    retry_at   timestamptz,          -- NULL when zero
    attempts   bigint      NOT NULL DEFAULT 0,
    authorize  boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (kind, jid, aor)
);
-- An in-dialog request (NOTIFY, SUBSCRIBE refresh) finds its subscription
-- by Call-ID and stox's tag.
CREATE INDEX subscriptions_dialog_idx ON subscriptions ((dialog->>'call_id'), (dialog->>'local_tag'));

-- Last known presence per XMPP resource (mapping.Presence).
CREATE TABLE presences (
    from_jid text        PRIMARY KEY, -- full JID, Presence.From.String()
    presence jsonb       NOT NULL,    -- see store.wirePresence
    updated  timestamptz NOT NULL DEFAULT now() -- when stored; for operators
);
