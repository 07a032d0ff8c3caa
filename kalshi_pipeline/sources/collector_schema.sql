-- The collector's tables, as it creates them (docs/data-model.md). The pipeline only
-- reads these; tests and `kalshi-pipeline generate --postgres` create them with this DDL,
-- all four (the simulator records a trade tape). rl_orderbook_trades is optional on
-- reading: a collector database without it reads as sessions without a trade tape.
CREATE TABLE IF NOT EXISTS rl_orderbook_sessions (
    session_id          BIGSERIAL PRIMARY KEY,
    market_tickers      TEXT[] NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ended_at            TIMESTAMPTZ NULL,
    status              VARCHAR(20) NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'closed', 'error')),
    websocket_url       TEXT,
    environment         TEXT CHECK (environment IN ('local', 'production', 'paper', 'test')),
    connection_metadata JSONB,
    messages_received   BIGINT DEFAULT 0,
    snapshots_count     INT DEFAULT 0,
    deltas_count        INT DEFAULT 0,
    last_message_at     TIMESTAMPTZ,
    error_message       TEXT,
    created_at          TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS rl_orderbook_snapshots (
    id               BIGSERIAL PRIMARY KEY,
    session_id       BIGINT NOT NULL REFERENCES rl_orderbook_sessions(session_id),
    market_ticker    VARCHAR(100) NOT NULL,
    timestamp_ms     BIGINT NOT NULL CHECK (timestamp_ms > 1577836800000),
    sequence_number  BIGINT NOT NULL,
    yes_bids         JSONB,
    yes_asks         JSONB,
    no_bids          JSONB,
    no_asks          JSONB,
    yes_spread       INT,
    no_spread        INT,
    yes_mid_price    NUMERIC(10,4),
    no_mid_price     NUMERIC(10,4),
    total_volume     BIGINT,
    created_at       TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS rl_orderbook_deltas (
    id               BIGSERIAL PRIMARY KEY,
    session_id       BIGINT NOT NULL REFERENCES rl_orderbook_sessions(session_id),
    market_ticker    VARCHAR(100) NOT NULL,
    timestamp_ms     BIGINT NOT NULL CHECK (timestamp_ms > 1577836800000),
    sequence_number  BIGINT NOT NULL,
    side             VARCHAR(3) NOT NULL CHECK (side IN ('yes', 'no')),
    action           VARCHAR(10) NOT NULL CHECK (action IN ('add', 'remove', 'update')),
    price            INT NOT NULL,
    old_size         BIGINT,
    new_size         BIGINT,
    created_at       TIMESTAMPTZ DEFAULT NOW()
);

-- Kalshi's public `trade` channel, one row per trade. A message gives the prices and the
-- count either as integers (yes_price, no_price in cents; count) or, in its newer format,
-- as decimal strings (yes_price_dollars "0.5600", count_fp "10.00"): the collector stores
-- what it got, and the reader takes the integer where there is one. ts is the exchange's
-- time in whole seconds, as Kalshi sends it; timestamp_ms the collector's receive time.
-- sequence_number is set where the collector numbers trades from the book's counter.
CREATE TABLE IF NOT EXISTS rl_orderbook_trades (
    id                BIGSERIAL PRIMARY KEY,
    session_id        BIGINT NOT NULL REFERENCES rl_orderbook_sessions(session_id),
    trade_id          TEXT NOT NULL,
    market_ticker     VARCHAR(100) NOT NULL,
    yes_price         INT NULL,
    no_price          INT NULL,
    count             BIGINT NULL,
    yes_price_dollars TEXT NULL,
    no_price_dollars  TEXT NULL,
    count_fp          TEXT NULL,
    taker_side        VARCHAR(3) NOT NULL,
    ts                BIGINT NULL,
    timestamp_ms      BIGINT NOT NULL,
    sequence_number   BIGINT NULL,
    created_at        TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS rl_orderbook_snapshots_session_idx
    ON rl_orderbook_snapshots (session_id, id);
CREATE INDEX IF NOT EXISTS rl_orderbook_deltas_session_idx
    ON rl_orderbook_deltas (session_id, id);
CREATE INDEX IF NOT EXISTS rl_orderbook_trades_session_idx
    ON rl_orderbook_trades (session_id, id);
