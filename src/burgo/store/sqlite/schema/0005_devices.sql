-- Device registry (issue: device ingestion): devices, their health status, and the ids of the
-- messages already taken in (a redelivered LoRaWAN uplink is stored once).
CREATE TABLE devices (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    dev_eui     TEXT,
    created_at  TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX devices_tenant_eui ON devices (tenant, dev_eui) WHERE dev_eui IS NOT NULL;

CREATE TABLE device_status (
    tenant        TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    state         TEXT NOT NULL,
    state_since   TEXT,
    last_seen     TEXT,
    battery       REAL,
    rssi          REAL,
    snr           REAL,
    gateway       TEXT,
    frame_counter INTEGER,
    messages      INTEGER NOT NULL DEFAULT 0,
    duplicates    INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_error_at TEXT,
    PRIMARY KEY (tenant, device_id),
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id) ON DELETE CASCADE
);

CREATE TABLE device_messages (
    tenant      TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id, message_id),
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;
