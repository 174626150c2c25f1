-- The agent's console: time the caller spent on hold and how often the call was transferred
-- (each hold and transfer is also on the call's timeline, call_events).
ALTER TABLE calls ADD COLUMN hold_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0;
