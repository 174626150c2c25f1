-- Agents, elders, calls, call events and the audit log: the call path's store.
CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor')),
    dialects TEXT NOT NULL DEFAULT 'cmn',
    lang TEXT NOT NULL DEFAULT 'zh_CN',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE elders (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '',
    dialect TEXT NOT NULL DEFAULT 'cmn',
    lang TEXT NOT NULL DEFAULT 'zh_CN',
    hard_of_hearing INTEGER NOT NULL DEFAULT 0,
    card_code TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);

CREATE TABLE links (
    token TEXT PRIMARY KEY,
    elder_id INTEGER NOT NULL REFERENCES elders(id),
    auto_start INTEGER NOT NULL DEFAULT 0,
    expires_at REAL,
    revoked_at REAL,
    created_at REAL NOT NULL
);
CREATE INDEX links_elder ON links(elder_id);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    elder_id INTEGER REFERENCES elders(id),
    agent_id INTEGER REFERENCES agents(id),
    dialect TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'inbound',
    arrived_at REAL NOT NULL,
    rang_at REAL,
    answered_at REAL,
    ended_at REAL,
    wait_seconds REAL,
    talk_seconds REAL,
    outcome TEXT,
    ended_by TEXT,
    fraud_flag INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    rejoin_hash TEXT,
    rating TEXT
);
CREATE INDEX calls_arrived ON calls(arrived_at);
CREATE INDEX calls_elder ON calls(elder_id);
CREATE INDEX calls_agent ON calls(agent_id);

CREATE TABLE call_events (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX call_events_call ON call_events(call_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    username TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX login_failures_at ON login_failures(at);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
