-- Why a website is failed (NULL unless it is), shown with it.
ALTER TABLE websites ADD COLUMN failure_reason TEXT;

-- The saga journal: one row per website change in flight, written before each step and
-- removed when the change ends, so a start after a crash undoes or finishes it. No foreign
-- keys: a deletion's row outlives its website, a creation's may precede it.
CREATE TABLE website_operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    node_id     INTEGER NOT NULL,
    website_id  INTEGER,
    kind        TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
