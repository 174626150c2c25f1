-- What callers answered on each guidance step (for the per-script "没找到" report).
CREATE TABLE guidance_answers (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    script_id TEXT NOT NULL,
    step_id TEXT,
    answer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    seconds REAL NOT NULL
);
CREATE INDEX guidance_answers_script ON guidance_answers(script_id);
CREATE INDEX guidance_answers_call ON guidance_answers(call_id);
