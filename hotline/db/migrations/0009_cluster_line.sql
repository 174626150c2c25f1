-- The line and agents' states as rows (cluster mode: every node reads and changes the same line).
-- State machine (docs/cluster.md): pending -> reserved (a ring, expires by the database clock)
-- -> assigned -> wrapping -> done; an expired or declined reservation returns to pending with
-- the same place. `place` orders a dialect's line: the arrival sequence, or below everyone for
-- a caller sent back to the head. declined_by is ',1,5,' (agents who passed this caller on).
CREATE TABLE line_entries (
    call_id TEXT PRIMARY KEY,
    dialect TEXT NOT NULL,
    arrived_at REAL NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    place REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'reserved', 'assigned', 'wrapping', 'done')),
    agent_id INTEGER,
    reserved_at REAL,
    expires_at REAL,
    declined_by TEXT NOT NULL DEFAULT ',',
    node TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE INDEX line_entries_waiting ON line_entries(state, dialect, priority, place);
CREATE INDEX line_entries_expiry ON line_entries(state, expires_at);

CREATE TABLE agent_states (
    agent_id INTEGER NOT NULL PRIMARY KEY,
    dialects TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('available', 'ringing', 'in_call', 'wrap_up', 'away')),
    idle_since REAL NOT NULL,
    call_id TEXT,
    node TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);

-- Counters shared by every node: 'arrival' grows (back of the line), 'head' shrinks (front).
CREATE TABLE line_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO line_counters (name, value) VALUES ('arrival', 0);
INSERT INTO line_counters (name, value) VALUES ('head', 0);
