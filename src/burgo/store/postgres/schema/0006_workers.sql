-- Several Burgo processes sharing the database. Each subscription's notifications are delivered
-- by one process at a time, which holds its lane for a while (lane_owner until lane_until) and
-- extends the lease as it goes; a process that dies loses its lanes when their leases run out.
-- periodic_round is the last period of a periodic subscription that was queued (one process
-- queues each period). burgo_jobs records which process last ran each scheduled job.
ALTER TABLE subscriptions
    ADD COLUMN lane_owner text,
    ADD COLUMN lane_until timestamptz,
    ADD COLUMN periodic_round bigint;

CREATE TABLE burgo_jobs (
    name        text COLLATE "C" PRIMARY KEY,
    owner       text NOT NULL,
    ran_at      timestamptz NOT NULL
);
