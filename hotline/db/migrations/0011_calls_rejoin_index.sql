-- A page coming back with the rejoin secret of a call that ended while it was away (its node
-- or the line's holder died before telling it) is told so: found by the secret's hash.
CREATE INDEX IF NOT EXISTS calls_rejoin_hash ON calls (rejoin_hash);
