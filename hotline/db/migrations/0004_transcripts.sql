-- Final caption lines of calls, masked before they are written. Purged after retention.
CREATE TABLE transcripts (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    speaker TEXT NOT NULL CHECK (speaker IN ('caller', 'agent')),
    at REAL NOT NULL,
    dialect TEXT NOT NULL,
    text TEXT NOT NULL,
    gloss TEXT NOT NULL DEFAULT '',
    words TEXT NOT NULL DEFAULT '[]',
    alerts TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX transcripts_call ON transcripts(call_id);
CREATE INDEX transcripts_at ON transcripts(at);
