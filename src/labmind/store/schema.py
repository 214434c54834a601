"""The store's SQL schema. Bump SCHEMA_VERSION and add a migration step whenever it changes."""

SCHEMA_VERSION = 5

#: Tables that schema 3 added (shared by the full schema and the 2 -> 3 migration).
_TABLES_3 = """
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    spec TEXT NOT NULL,
    model TEXT NOT NULL,
    role TEXT NOT NULL,                  -- ideate | implement | repair | reflect | director | audit
    experiment_id INTEGER,
    line_id INTEGER,
    cache_key TEXT NOT NULL,
    status TEXT NOT NULL,                -- ok | error | cached
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    latency_s REAL NOT NULL DEFAULT 0,
    error TEXT,
    prompt TEXT NOT NULL DEFAULT '',     -- truncated, for audit
    response TEXT NOT NULL DEFAULT '',   -- truncated, for audit
    completion_json TEXT                 -- the whole answer of an ok call: resume re-uses it instead of re-buying
);
CREATE INDEX IF NOT EXISTS llm_calls_key ON llm_calls(cache_key);
CREATE INDEX IF NOT EXISTS llm_calls_experiment ON llm_calls(experiment_id);

CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,                  -- explore | combine | retire
    line_id INTEGER,                     -- the line it acts on (the new line, for explore)
    other_line_id INTEGER,               -- combine: the line whose win is merged in
    experiment_id INTEGER,               -- combine: the experiment it created
    reason TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}'
);
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS lab (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    task_json TEXT NOT NULL,
    repo_root TEXT NOT NULL,
    task_subdir TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    branch TEXT NOT NULL,
    created_at REAL NOT NULL,
    baseline_id INTEGER,
    min_effect REAL,
    noise_sd REAL,
    settings_json TEXT NOT NULL DEFAULT '{}',
    scale TEXT                              -- the judge's scale, chosen at the baseline: linear | log
);

CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    incumbent_id INTEGER,
    status TEXT NOT NULL DEFAULT 'active',  -- active | retired
    created_at REAL NOT NULL,
    direction TEXT NOT NULL DEFAULT '',     -- what this line explores (the director's words), if anything
    note TEXT NOT NULL DEFAULT '',          -- why it was retired
    verified_id INTEGER                     -- the line's last verified point (its incumbent may be provisional)
);

CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    line_id INTEGER REFERENCES lines(id),
    parent_id INTEGER REFERENCES experiments(id),
    kind TEXT NOT NULL,                  -- baseline | candidate
    status TEXT NOT NULL,                -- proposing | testing | done
    brain TEXT NOT NULL DEFAULT '',
    idea_json TEXT NOT NULL DEFAULT '{}',
    base_commit TEXT,
    commit_sha TEXT,
    diff TEXT,
    changed_files TEXT NOT NULL DEFAULT '[]',
    verdict TEXT,
    reason TEXT,
    metric REAL,
    metric_sd REAL,
    ci_low REAL,
    ci_high REAL,
    n_runs INTEGER NOT NULL DEFAULT 0,
    p_value REAL,
    flags TEXT NOT NULL DEFAULT '[]',
    near_miss INTEGER NOT NULL DEFAULT 0,
    slot_seconds REAL NOT NULL DEFAULT 0,  -- run time on the lab's slots (GPUs or CPU slots), as users see it
    brain_seconds REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    analysis TEXT,                        -- the brain's reflection on the result
    directive_json TEXT NOT NULL DEFAULT '{}',  -- why the lab asked for it: {"kind": "repair" | "combine", ...}
    judgement_json TEXT NOT NULL DEFAULT '{}'  -- the judge's numbers: effect, CI, P(better), runs, design
);
CREATE INDEX IF NOT EXISTS experiments_line ON experiments(line_id, id);
CREATE INDEX IF NOT EXISTS experiments_status ON experiments(status);
CREATE INDEX IF NOT EXISTS experiments_verdict ON experiments(verdict);

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    purpose TEXT NOT NULL,               -- baseline | screen | reference | confirm (fresh seeds)
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,                -- queued | running | done | interrupted
    slot TEXT,
    token TEXT,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    outcome TEXT,                        -- ok | crashed | timed_out | no_metric | bad_metric
    metric REAL,
    self_reported REAL,
    holdout REAL,                        -- the held-out evaluator's value on this run's artifacts
    secondary TEXT NOT NULL DEFAULT '{}',
    flags TEXT NOT NULL DEFAULT '[]',
    log_path TEXT,
    log_tail TEXT,
    sandbox TEXT,
    requeued_from INTEGER
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    experiment_id INTEGER,
    run_id INTEGER,
    message TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    decision TEXT NOT NULL,              -- accept | reject
    note TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT 'person',
    at REAL NOT NULL
);
""" + _TABLES_3

#: Steps that bring a store from version N to N + 1.
#: Schema 5 stores each flag as an object {rule, path, line, evidence} (labmind.findings). A schema-4 flag was a
#: string "rule: evidence" (or a bare rule name): the rule is what comes before the first colon, the evidence
#: the rest, path and line unknown. Finding.from_json reads an unmigrated string the same way.
_FLAG_OBJECTS = """
UPDATE {table} SET flags = (
    SELECT json_group_array(CASE WHEN j.type = 'text' THEN json_object(
        'rule', trim(CASE WHEN instr(j.value, ':') > 0 THEN substr(j.value, 1, instr(j.value, ':') - 1)
                          ELSE j.value END),
        'path', NULL, 'line', NULL,
        'evidence', CASE WHEN instr(j.value, ':') > 0 THEN trim(substr(j.value, instr(j.value, ':') + 1)) ELSE '' END)
        ELSE json(j.value) END)
    FROM json_each({table}.flags) AS j)
WHERE flags != '[]';
"""

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT 'person',
    at REAL NOT NULL
);
ALTER TABLE runs ADD COLUMN holdout REAL;
""",
    2: """
ALTER TABLE lines ADD COLUMN direction TEXT NOT NULL DEFAULT '';
ALTER TABLE lines ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN analysis TEXT;
ALTER TABLE experiments ADD COLUMN directive_json TEXT NOT NULL DEFAULT '{}';
""" + _TABLES_3,
    3: """
ALTER TABLE lab ADD COLUMN scale TEXT;
ALTER TABLE lines ADD COLUMN verified_id INTEGER;
UPDATE lines SET verified_id = incumbent_id;
ALTER TABLE experiments ADD COLUMN judgement_json TEXT NOT NULL DEFAULT '{}';
""",
    # 4 -> 5: the column is named as users see it (slot-seconds: a slot is a GPU or a CPU slot), and flags are
    # structured findings {rule, path, line, evidence} instead of "rule: evidence" strings.
    4: """
ALTER TABLE experiments RENAME COLUMN gpu_seconds TO slot_seconds;
""" + _FLAG_OBJECTS.format(table="experiments") + _FLAG_OBJECTS.format(table="runs"),
}
