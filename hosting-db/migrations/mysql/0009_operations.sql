-- Why a website is failed (NULL unless it is), shown with it.
ALTER TABLE websites ADD COLUMN failure_reason MEDIUMTEXT;

-- The saga journal: one row per website change in flight, written before each step and
-- removed when the change ends, so a start after a crash undoes or finishes it. No foreign
-- keys: a deletion's row outlives its website, a creation's may precede it.
CREATE TABLE website_operations (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    node_id     BIGINT NOT NULL,
    website_id  BIGINT,
    kind        VARCHAR(16) NOT NULL,
    step        VARCHAR(16) NOT NULL,
    state       MEDIUMTEXT  NOT NULL,
    started_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
