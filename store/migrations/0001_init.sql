-- v1: accounts, registrations (bindings) and the durable XMPP→SIP outbox.

CREATE TABLE accounts (
    user_name  text        PRIMARY KEY,
    realm      text        NOT NULL,
    ha1_md5    text        NOT NULL DEFAULT '',
    ha1_sha256 text        NOT NULL DEFAULT '',
    display    text        NOT NULL DEFAULT '',
    created    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bindings (
    aor        text        NOT NULL,
    contact    text        NOT NULL,
    source     text        NOT NULL DEFAULT '',
    call_id    text        NOT NULL DEFAULT '',
    cseq       bigint      NOT NULL DEFAULT 0, -- SIP CSeq is 32-bit unsigned
    expires    timestamptz NOT NULL,
    user_agent text        NOT NULL DEFAULT '',
    PRIMARY KEY (aor, contact)
);
CREATE INDEX bindings_expires_idx ON bindings (expires);

CREATE TABLE outbox (
    id       bigserial   PRIMARY KEY,
    message  jsonb       NOT NULL, -- mapping.XMPPMessage, see store.wireMessage
    accepted timestamptz NOT NULL DEFAULT now(),
    attempts integer     NOT NULL DEFAULT 0
);
