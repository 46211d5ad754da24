-- Completion markers of tasks whose output must be visible from every host (luigi.contrib.postgres's
-- marker table, with the task's result document beside it).
CREATE TABLE IF NOT EXISTS task_markers (
    marker_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    inserted_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
