-- The scheduler's last claimed slot per promotion rule and image variant: the next run is
-- computed from it (one catch-up run after downtime), and claiming it with a compare-and-set
-- keeps two replicas from running the same slot.
CREATE TABLE promotion_runs (
    catalog_name TEXT NOT NULL,
    -- '' for an entry's default image (a primary key column cannot be NULL).
    variant TEXT NOT NULL,
    from_channel TEXT NOT NULL,
    to_channel TEXT NOT NULL,
    slot TIMESTAMPTZ NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (catalog_name, variant, from_channel, to_channel)
);
