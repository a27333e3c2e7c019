-- Device registry: devices, their health status, and the ids of the messages already taken in
-- (a redelivered LoRaWAN uplink is stored once).
CREATE TABLE devices (
    tenant      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    dev_eui     text COLLATE "C",
    created_at  text NOT NULL,
    doc         json NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX devices_tenant_eui ON devices (tenant, dev_eui) WHERE dev_eui IS NOT NULL;

CREATE TABLE device_status (
    tenant        text COLLATE "C" NOT NULL,
    device_id     text COLLATE "C" NOT NULL,
    state         text NOT NULL,
    state_since   text,
    last_seen     text,
    battery       double precision,
    rssi          double precision,
    snr           double precision,
    gateway       text,
    frame_counter bigint,
    messages      bigint NOT NULL DEFAULT 0,
    duplicates    bigint NOT NULL DEFAULT 0,
    errors        bigint NOT NULL DEFAULT 0,
    last_error    text,
    last_error_at text,
    PRIMARY KEY (tenant, device_id),
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id) ON DELETE CASCADE
);

CREATE TABLE device_messages (
    tenant      text COLLATE "C" NOT NULL,
    device_id   text COLLATE "C" NOT NULL,
    message_id  text COLLATE "C" NOT NULL,
    received_at text NOT NULL,
    PRIMARY KEY (tenant, device_id, message_id),
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id) ON DELETE CASCADE
);
