-- Wrong card codes tried on the family booking form, per client address, so that guessing
-- is counted per address and for everyone together (see docs/reliability.md).
-- Card codes themselves grow from 6 to 10 digits: hotline.db.elders.lengthen_card_codes
-- redraws every shorter code at start (random codes cannot be drawn in portable SQL).
CREATE TABLE card_failures (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX card_failures_at ON card_failures(at);
CREATE INDEX card_failures_address ON card_failures(address, at);
