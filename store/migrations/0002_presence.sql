-- v2: presence state (docs/architecture.md, "Durability contract"). Tables only; the presence code owns
-- their semantics and may refine them in later migrations.

-- RFC 8048 presence authorization of an XMPP JID towards a SIP AOR.
CREATE TABLE authorizations (
    jid     text        NOT NULL, -- bare JID
    aor     text        NOT NULL, -- sip:user@domain
    state   text        NOT NULL, -- e.g. none, pending-out, pending-in, both
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (jid, aor)
);

-- SIP SUBSCRIBE/NOTIFY dialogs (RFC 6665).
CREATE TABLE notification_dialogs (
    call_id       text        NOT NULL,
    local_tag     text        NOT NULL,
    remote_tag    text        NOT NULL DEFAULT '',
    jid           text        NOT NULL DEFAULT '',
    aor           text        NOT NULL DEFAULT '',
    local_cseq    bigint      NOT NULL DEFAULT 0,
    remote_cseq   bigint      NOT NULL DEFAULT 0,
    route_set     text[]      NOT NULL DEFAULT '{}',
    remote_target text        NOT NULL DEFAULT '',
    expires       timestamptz NOT NULL,
    state         text        NOT NULL,
    PRIMARY KEY (call_id, local_tag)
);
CREATE INDEX notification_dialogs_expires_idx ON notification_dialogs (expires);

-- Last known presence per entity and resource (XMPP) or tuple id (PIDF).
CREATE TABLE presence (
    entity   text        NOT NULL,
    resource text        NOT NULL DEFAULT '',
    document jsonb       NOT NULL,
    updated  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, resource)
);
