-- Subscriptions (their document and delivery status) and the outbox of queued notifications.
CREATE TABLE subscriptions (
    pk                INTEGER PRIMARY KEY,
    tenant            TEXT NOT NULL,
    id                TEXT NOT NULL,
    doc               TEXT NOT NULL,
    times_sent        INTEGER NOT NULL DEFAULT 0,
    times_failed      INTEGER NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success      TEXT,
    last_failure      TEXT,
    failing           INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX subscriptions_tenant_id ON subscriptions (tenant, id);

CREATE TABLE notification_outbox (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant            TEXT NOT NULL,
    subscription_id   TEXT NOT NULL,
    changes           TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notification_outbox_lane ON notification_outbox (tenant, subscription_id, seq);
