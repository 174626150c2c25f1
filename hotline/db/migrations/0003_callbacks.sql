-- Callbacks: agents' shifts (capacity), bookings, their attempts, and call wrap-ups.
CREATE TABLE shifts (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_hour INTEGER NOT NULL CHECK (start_hour BETWEEN 0 AND 23),
    end_hour INTEGER NOT NULL CHECK (end_hour BETWEEN 1 AND 24 AND end_hour > start_hour),
    created_at REAL NOT NULL
);
CREATE INDEX shifts_weekday ON shifts(weekday);

CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('family', 'keep_place', 'abandoned', 'follow_up')),
    status TEXT NOT NULL CHECK (status IN ('held', 'booked', 'queued', 'claimed', 'done', 'failed', 'cancelled')),
    elder_id INTEGER REFERENCES elders(id),
    phone TEXT NOT NULL DEFAULT '',
    dialect TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    slot_start REAL,
    alternates TEXT NOT NULL DEFAULT '[]',
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by INTEGER REFERENCES agents(id),
    claimed_at REAL,
    queued_at REAL,
    family_contact TEXT NOT NULL DEFAULT '',
    lang TEXT NOT NULL DEFAULT 'zh_CN',
    idem_key TEXT UNIQUE,
    manage_nonce TEXT NOT NULL,
    new_link_token TEXT,
    source_call_id TEXT,
    last_call_id TEXT,
    address TEXT NOT NULL DEFAULT '',
    family_notified_at REAL,
    created_by TEXT NOT NULL DEFAULT 'family',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX callbacks_due ON callbacks(status, due_at);
CREATE INDEX callbacks_slot ON callbacks(slot_start, dialect);
CREATE INDEX callbacks_phone ON callbacks(phone, status);
CREATE INDEX callbacks_address ON callbacks(address, created_at);
CREATE INDEX callbacks_source ON callbacks(source_call_id);

CREATE TABLE callback_attempts (
    id INTEGER PRIMARY KEY,
    callback_id INTEGER NOT NULL REFERENCES callbacks(id),
    at REAL NOT NULL,
    agent_id INTEGER REFERENCES agents(id),
    result TEXT NOT NULL,
    call_id TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX callback_attempts_cb ON callback_attempts(callback_id);

CREATE TABLE wrapups (
    call_id TEXT PRIMARY KEY REFERENCES calls(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    problem TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    next_step TEXT NOT NULL DEFAULT '',
    next_owner TEXT NOT NULL DEFAULT '',
    outcome_code TEXT NOT NULL,
    share_with_family INTEGER NOT NULL DEFAULT 0,
    follow_up_callback_id INTEGER REFERENCES callbacks(id),
    no_follow_up_reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
