-- The agent's console: time the caller spent on hold and how often the call was transferred
-- (each hold and transfer is also on the call's timeline, call_events).
ALTER TABLE calls ADD COLUMN hold_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0;

-- The elder's registered photo for the identity check: the image is a file under the data
-- directory (never in a page's HTML), this row says whose, who added it, with what consent.
CREATE TABLE elder_photos (
    id INTEGER PRIMARY KEY,
    elder_id INTEGER NOT NULL REFERENCES elders(id),
    path TEXT NOT NULL,
    mime TEXT NOT NULL,
    added_by TEXT NOT NULL,
    consent INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX elder_photos_elder ON elder_photos(elder_id);
