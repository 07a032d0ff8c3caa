-- Paper trading's own tables (docs/paper-trading.md), in the pipeline's database, never
-- the collector's. kalshi_pipeline.paper.store creates them (idempotent) and writes each
-- poll's records together with the cursor in one transaction. The primary keys make a
-- record written twice impossible: a second copy of a row fails the whole poll's write.
CREATE TABLE IF NOT EXISTS paper_sessions (
    session_id   BIGINT PRIMARY KEY,          -- the collector's session id
    source       TEXT NOT NULL,               -- the collector: host:port/database, no credentials
    env_config   JSONB NOT NULL,              -- the env config of the session's first model
    models       JSONB NOT NULL DEFAULT '[]', -- every (model, model_path) that played a market
    status       TEXT NOT NULL DEFAULT 'following' CHECK (status IN ('following', 'closed')),
    started_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    closed_at    TIMESTAMPTZ NULL,
    repairs      JSONB NOT NULL DEFAULT '{}', -- cleaning's repairs so far, by kind
    live_only    JSONB NOT NULL DEFAULT '{}', -- what the live path could not do, by kind
    polls        BIGINT NOT NULL DEFAULT 0,   -- writes so far (paper_polls' rows)
    snapshots_id BIGINT NOT NULL DEFAULT 0,   -- the cursor: the last collector row id read
    deltas_id    BIGINT NOT NULL DEFAULT 0,
    trades_id    BIGINT NOT NULL DEFAULT 0
);

-- Each write's cursor, in order: a resumed follower replays the collector's rows in the
-- same groups the live run read them in.
CREATE TABLE IF NOT EXISTS paper_polls (
    session_id   BIGINT NOT NULL REFERENCES paper_sessions(session_id),
    poll         BIGINT NOT NULL,             -- 1, 2, ...
    snapshots_id BIGINT NOT NULL,
    deltas_id    BIGINT NOT NULL,
    trades_id    BIGINT NOT NULL,
    written_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (session_id, poll)
);

CREATE TABLE IF NOT EXISTS paper_markets (
    session_id   BIGINT NOT NULL REFERENCES paper_sessions(session_id),
    market       TEXT NOT NULL,
    model        TEXT NOT NULL,
    model_path   TEXT NOT NULL,               -- '' for always-HOLD
    ended        BOOLEAN NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (session_id, market)
);

CREATE TABLE IF NOT EXISTS paper_decisions (
    session_id   BIGINT NOT NULL REFERENCES paper_sessions(session_id),
    market       TEXT NOT NULL,
    step         INTEGER NOT NULL,
    step_ms      BIGINT NOT NULL,             -- the step's receive time, ms since the epoch
    model        TEXT NOT NULL,
    action       SMALLINT NOT NULL,
    observation  BYTEA NOT NULL,              -- the observation's float32 values, as bytes
    decided_at   TIMESTAMPTZ NOT NULL,        -- wall time the decision was made
    PRIMARY KEY (session_id, market, step)
);

CREATE TABLE IF NOT EXISTS paper_outcomes (
    session_id   BIGINT NOT NULL REFERENCES paper_sessions(session_id),
    market       TEXT NOT NULL,
    step         INTEGER NOT NULL,
    reward       DOUBLE PRECISION NOT NULL,
    cash_cents   BIGINT NOT NULL,
    position     BIGINT NOT NULL,
    value_cents  BIGINT NOT NULL,
    filled       BIGINT NOT NULL,
    fees_cents   BIGINT NOT NULL,
    terminated   BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, market, step)
);

-- An order can fill more than once in one step (two trades at its price), so a fill is
-- keyed by its place among its step's fills; order_id says which order it was.
CREATE TABLE IF NOT EXISTS paper_fills (
    session_id   BIGINT NOT NULL REFERENCES paper_sessions(session_id),
    market       TEXT NOT NULL,
    step         INTEGER NOT NULL,
    fill_index   INTEGER NOT NULL,            -- 0, 1, ... within the step
    order_id     BIGINT NOT NULL,
    time_ms      BIGINT NOT NULL,
    side         SMALLINT NOT NULL,
    price_cents  INTEGER NOT NULL,
    contracts    BIGINT NOT NULL,
    maker        BOOLEAN NOT NULL,
    fee_cents    BIGINT NOT NULL,
    PRIMARY KEY (session_id, market, step, fill_index)
);
