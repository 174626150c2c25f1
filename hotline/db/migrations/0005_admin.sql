-- Supervisor settings: guidance scripts switched off (the live side skips them).
CREATE TABLE script_settings (
    script_id TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
