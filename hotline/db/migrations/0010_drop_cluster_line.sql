-- 0009 kept the line in tables every node would route from (the "any node" design). Cluster
-- mode became one switchboard on the node holding the line's lock instead (docs/cluster.md):
-- the waiting line is restored from `calls`, so these tables were never used. Dropped.
DROP TABLE IF EXISTS line_entries;
DROP TABLE IF EXISTS agent_states;
DROP TABLE IF EXISTS line_counters;
