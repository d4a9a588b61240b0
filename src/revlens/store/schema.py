"""The DuckDB schema. Statements are idempotent, so opening a data folder creates or keeps it."""

SCHEMA_VERSION = 1

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS projects (
        pid INTEGER PRIMARY KEY,
        id VARCHAR UNIQUE NOT NULL,
        name VARCHAR UNIQUE NOT NULL,
        api_key VARCHAR UNIQUE NOT NULL,
        secret_hash VARCHAR NOT NULL,
        currency VARCHAR NOT NULL,
        timezone VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        id VARCHAR PRIMARY KEY,
        pid INTEGER NOT NULL,
        secrets VARCHAR[] NOT NULL,
        account VARCHAR,
        description VARCHAR,
        created_at TIMESTAMP NOT NULL
    )""",
    # One row per Stripe event id and project: the exactly-once index and the raw delivery's address.
    """CREATE TABLE IF NOT EXISTS deliveries (
        pid INTEGER NOT NULL,
        event_id VARCHAR NOT NULL,
        endpoint_id VARCHAR NOT NULL,
        stripe_type VARCHAR NOT NULL,
        api_version VARCHAR,
        account VARCHAR,
        status VARCHAR NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        log_position BIGINT NOT NULL,
        received_at TIMESTAMP NOT NULL,
        created TIMESTAMP,
        error VARCHAR,
        PRIMARY KEY (pid, event_id)
    )""",
    # Analytics events, derived from deliveries; `revlens reprocess` rebuilds this table.
    """CREATE TABLE IF NOT EXISTS events (
        pid INTEGER NOT NULL,
        insert_id VARCHAR NOT NULL,
        event_type VARCHAR NOT NULL,
        time TIMESTAMP NOT NULL,
        local_time TIMESTAMP NOT NULL,
        user_id VARCHAR,
        user_idx INTEGER,
        user_rank TINYINT NOT NULL,
        customer VARCHAR,
        revenue DECIMAL(18, 3),
        product VARCHAR,
        amount BIGINT,
        amount_paid BIGINT,
        fx_missing BOOLEAN NOT NULL,
        endpoint_id VARCHAR NOT NULL,
        properties JSON NOT NULL
    )""",
    # One row per user and project: a compact integer id for fast distinct counts and joins, and the
    # time of the user's first event (new-user cohorts, "within N days of first event").
    """CREATE TABLE IF NOT EXISTS users (
        pid INTEGER NOT NULL,
        user_idx INTEGER NOT NULL,
        user_id VARCHAR NOT NULL,
        first_time TIMESTAMP NOT NULL,
        first_local_time TIMESTAMP NOT NULL,
        PRIMARY KEY (pid, user_id)
    )""",
    """CREATE TABLE IF NOT EXISTS cohorts (
        pid INTEGER NOT NULL,
        id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        description VARCHAR,
        definition JSON NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        size BIGINT,
        computed_at TIMESTAMP,
        PRIMARY KEY (pid, id)
    )""",
    """CREATE TABLE IF NOT EXISTS identity_links (
        pid INTEGER NOT NULL,
        alias VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        rank TINYINT NOT NULL,
        PRIMARY KEY (pid, alias)
    )""",
    """CREATE TABLE IF NOT EXISTS endpoint_counters (
        endpoint_id VARCHAR PRIMARY KEY,
        ignored BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        invalid BIGINT NOT NULL DEFAULT 0,
        last_delivery_at TIMESTAMP
    )""",
    # Daily exchange rates: units of `currency` per one unit of `base`.
    """CREATE TABLE IF NOT EXISTS rates (
        base VARCHAR NOT NULL,
        day DATE NOT NULL,
        currency VARCHAR NOT NULL,
        rate DECIMAL(38, 12) NOT NULL,
        source VARCHAR,
        PRIMARY KEY (base, day, currency)
    )""",
    """CREATE TABLE IF NOT EXISTS ingest_state (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)""",
    # Columns added after the first release of the schema: data folders made before them get them here.
    """ALTER TABLE events ADD COLUMN IF NOT EXISTS user_idx INTEGER""",
    """ALTER TABLE events ADD COLUMN IF NOT EXISTS amount BIGINT""",
    """ALTER TABLE events ADD COLUMN IF NOT EXISTS amount_paid BIGINT""",
    # Each event carries its user's first seen time (`users.first_seen_time`: the first event time
    # known when the user was created, never updated), so that "within N days of the user's first
    # event" reads one table. For the few users whose first event moved earlier later on
    # (`users.first_time < first_seen_time`), queries take `users.first_time` (query/sql.py). Data
    # folders from before the columns get them filled when opened.
    """ALTER TABLE events ADD COLUMN IF NOT EXISTS user_first_time TIMESTAMP""",
    """ALTER TABLE users ADD COLUMN IF NOT EXISTS first_seen_time TIMESTAMP""",
    # Events per project, type, local day and product, with the sums of the typed money columns: kept
    # current by every write to `events`, so totals and sums without filters read a few thousand rows
    # instead of every event (query/summaries.py). `product` is the group-by label ('(none)').
    """CREATE TABLE IF NOT EXISTS daily_totals (
        pid INTEGER NOT NULL,
        event_type VARCHAR NOT NULL,
        day TIMESTAMP NOT NULL,
        product VARCHAR NOT NULL,
        events BIGINT NOT NULL,
        revenue DECIMAL(38, 3) NOT NULL,
        revenue_n BIGINT NOT NULL,
        amount HUGEINT NOT NULL,
        amount_n BIGINT NOT NULL,
        amount_paid HUGEINT NOT NULL,
        amount_paid_n BIGINT NOT NULL,
        PRIMARY KEY (pid, event_type, day, product)
    )""",
    # The users of each project, event type, local day / week / month and product (NULL: any
    # product) as Roaring bitmaps of user_idx, kept current by every write to `events`
    # (store/user_sets.py): distinct users per period or range without counting them over every
    # event. No primary key: each load appends its own small sets, which readers union and the
    # loader compacts.
    """CREATE TABLE IF NOT EXISTS user_sets (
        pid INTEGER NOT NULL,
        event_type VARCHAR NOT NULL,
        grain VARCHAR NOT NULL,
        start TIMESTAMP NOT NULL,
        product VARCHAR,
        users BLOB NOT NULL
    )""",
    # The closed months of each project whose events were rewritten in event-type order, with how
    # many events they held then (store/clustering.py). `month` is the first local day.
    """CREATE TABLE IF NOT EXISTS clustered_months (
        pid INTEGER NOT NULL,
        month TIMESTAMP NOT NULL,
        events BIGINT NOT NULL,
        PRIMARY KEY (pid, month)
    )""",
    # The web dashboard (src/revlens/web): sign-in sessions and saved dashboards.
    # One row per signed-in browser: the SHA-256 of the cookie's token (never the token itself), the
    # project it may read (NULL with admin, which reads every project) and its CSRF token.
    """CREATE TABLE IF NOT EXISTS web_sessions (
        token_hash VARCHAR PRIMARY KEY,
        pid INTEGER,
        admin BOOLEAN NOT NULL,
        csrf VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL
    )""",
    # A dashboard: a name and its charts (a JSON list of revlens.web.charts.Chart).
    """CREATE TABLE IF NOT EXISTS dashboards (
        pid INTEGER NOT NULL,
        id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        charts JSON NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (pid, id)
    )""",
)
