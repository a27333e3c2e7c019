-- Subscriptions (their document and delivery status) and the outbox of queued notifications.
CREATE TABLE subscriptions (
    tenant            text COLLATE "C" NOT NULL,
    id                text COLLATE "C" NOT NULL,
    pos               bigint GENERATED ALWAYS AS IDENTITY,
    doc               json NOT NULL,
    times_sent        bigint NOT NULL DEFAULT 0,
    times_failed      bigint NOT NULL DEFAULT 0,
    last_notification text,
    last_success      text,
    last_failure      text,
    failing           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE notification_outbox (
    tenant            text COLLATE "C" NOT NULL,
    subscription_id   text COLLATE "C" NOT NULL,
    seq               bigint GENERATED ALWAYS AS IDENTITY,
    changes           json NOT NULL,
    created_at        text NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, subscription_id, seq)
);
