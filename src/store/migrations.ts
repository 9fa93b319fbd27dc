/**
 * Schema migrations, applied in order inside one transaction each. Never edit a
 * released migration: add a new one, so stores created by older versions upgrade.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'bases, runs, settings',
    sql: `
      CREATE TABLE bases (
        name        TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        arch        TEXT NOT NULL,
        os          TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        boot        TEXT NOT NULL CHECK (boot IN ('kernel', 'bios')),
        kernel      TEXT,
        initrd      TEXT,
        root        TEXT NOT NULL,
        cmdline     TEXT NOT NULL DEFAULT '',
        size        INTEGER NOT NULL,
        virtual_size INTEGER NOT NULL,
        manifest    TEXT NOT NULL,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX bases_arch_os ON bases (arch, os);

      CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        finished_at TEXT,
        base        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('preparing', 'running', 'succeeded', 'failed', 'timeout', 'error')),
        exit_code   INTEGER,
        accel       TEXT,
        argv        TEXT NOT NULL,
        params      TEXT NOT NULL,
        resources   TEXT NOT NULL,
        out_dir     TEXT NOT NULL,
        run_dir     TEXT NOT NULL,
        owner       TEXT NOT NULL,
        qemu_pid    INTEGER,
        phases      TEXT,
        total_ms    INTEGER,
        error       TEXT
      );
      CREATE INDEX runs_status ON runs (status);

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'layers and units',
    sql: `
      -- A layer is a qcow2 overlay holding what one build step installed. Its
      -- parent is a base root or another layer (by blob digest).
      CREATE TABLE layers (
        digest      TEXT PRIMARY KEY,
        parent      TEXT NOT NULL,
        base_digest TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('packages', 'app')),
        packages    TEXT NOT NULL,
        key         TEXT NOT NULL UNIQUE,
        size        INTEGER NOT NULL,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX layers_base_kind ON layers (base_digest, kind);

      CREATE TABLE units (
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        digest      TEXT NOT NULL,
        base        TEXT NOT NULL,
        base_digest TEXT NOT NULL,
        top         TEXT NOT NULL,
        build_key   TEXT NOT NULL,
        manifest    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (name, version)
      );
      CREATE INDEX units_build_key ON units (build_key);
    `,
  },
  {
    version: 3,
    name: 'experiments, jobs, attempts, slot leases',
    sql: `
      -- A parameter sweep: a plan expanded into jobs once, at creation, so a resumed
      -- experiment runs exactly the jobs (and random draws: seed) it started with.
      CREATE TABLE experiments (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        finished_at TEXT,
        state       TEXT NOT NULL CHECK (state IN ('created', 'running', 'cancelling', 'stopped', 'succeeded', 'failed', 'cancelled')),
        owner       TEXT,
        plan_path   TEXT NOT NULL,
        plan_root   TEXT NOT NULL,
        plan_text   TEXT NOT NULL,
        seed        INTEGER NOT NULL,
        target      TEXT NOT NULL,
        resources   TEXT NOT NULL,
        max_retries INTEGER NOT NULL,
        slots       INTEGER,
        run_slots   INTEGER,
        run_slots_explain TEXT,
        job_count   INTEGER NOT NULL,
        dir         TEXT NOT NULL
      );

      CREATE TABLE experiment_jobs (
        experiment  TEXT NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        params      TEXT NOT NULL,
        commands    TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        failures    INTEGER NOT NULL DEFAULT 0,
        owner       TEXT,
        not_before  INTEGER NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        error       TEXT,
        outputs     TEXT,
        started_at  TEXT,
        finished_at TEXT,
        PRIMARY KEY (experiment, idx)
      );
      CREATE INDEX experiment_jobs_state ON experiment_jobs (experiment, state, idx);

      -- Every attempt of every job, each with its own run (and console log) kept.
      CREATE TABLE attempts (
        experiment  TEXT NOT NULL,
        job         INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        run_id      TEXT,
        owner       TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled')),
        exit_code   INTEGER,
        error       TEXT,
        out_dir     TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        phases      TEXT,
        total_ms    INTEGER,
        PRIMARY KEY (experiment, job, attempt),
        FOREIGN KEY (experiment, job) REFERENCES experiment_jobs (experiment, idx) ON DELETE CASCADE
      );
      CREATE INDEX attempts_status ON attempts (status);

      -- Host-wide instance slots shared by every vmwu process on this host; a lease
      -- names its owner (pid:starttime), so a dead process's leases are reclaimed.
      CREATE TABLE slot_leases (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        owner       TEXT NOT NULL,
        experiment  TEXT NOT NULL,
        job         INTEGER NOT NULL,
        memory_mib  INTEGER NOT NULL,
        cpus        INTEGER NOT NULL,
        acquired_at TEXT NOT NULL,
        UNIQUE (experiment, job)
      );
    `,
  },
  {
    version: 4,
    name: 'executors of experiments, Slurm array submissions',
    sql: `
      -- Where an experiment's jobs run when it is not this host (local is the default: no row).
      CREATE TABLE experiment_executors (
        experiment  TEXT PRIMARY KEY REFERENCES experiments (name) ON DELETE CASCADE,
        kind        TEXT NOT NULL,
        options     TEXT NOT NULL
      );

      -- Each sbatch --array submission of an experiment, so a restarted submitter
      -- re-attaches to arrays still queued or running instead of submitting again.
      CREATE TABLE slurm_submissions (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment   TEXT NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
        round        INTEGER NOT NULL,
        slurm_job_id TEXT NOT NULL,
        jobs         TEXT NOT NULL,
        script_path  TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        active       INTEGER NOT NULL DEFAULT 1
      );
      CREATE INDEX slurm_submissions_active ON slurm_submissions (experiment, active);
    `,
  },
  {
    version: 5,
    name: 'bases record their package manager',
    sql: `
      -- Whether builds may install packages on a base is a property of the base,
      -- not something to guess from its description.
      ALTER TABLE bases ADD COLUMN package_manager TEXT CHECK (package_manager IN ('apt'));
      UPDATE bases SET package_manager = 'apt' WHERE description LIKE 'Debian %';
    `,
  },
  {
    version: 6,
    name: 'SSH hosts, what they hold, where attempts ran',
    sql: `
      -- A pool of SSH hosts for --executor ssh. host_key is the key recorded when the
      -- host was added (base64 of the SSH wire blob); every later connection must match it.
      CREATE TABLE hosts (
        name        TEXT PRIMARY KEY,
        user        TEXT NOT NULL,
        address     TEXT NOT NULL,
        port        INTEGER NOT NULL,
        key_path    TEXT,
        slots       INTEGER,
        labels      TEXT NOT NULL,
        host_key    TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        vmwu        TEXT NOT NULL,
        store       TEXT,
        info        TEXT NOT NULL,
        added_at    TEXT NOT NULL,
        checked_at  TEXT NOT NULL
      );

      -- Blobs a host is known to hold (confirmed by the host, or verified there on arrival).
      CREATE TABLE host_blobs (
        host        TEXT NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
        digest      TEXT NOT NULL,
        PRIMARY KEY (host, digest)
      );

      ALTER TABLE attempts ADD COLUMN host TEXT;
    `,
  },
  {
    version: 7,
    name: 'node-local instances, resource use, Slurm tasks',
    sql: `
      -- Where a run's disks and sockets are (node-local scratch, not the store), and
      -- the CPU time and peak memory of its QEMU.
      ALTER TABLE runs ADD COLUMN scratch_dir TEXT;
      ALTER TABLE runs ADD COLUMN usage TEXT;

      -- Per attempt: the batch system's id of the task that ran it, and its resource
      -- use (from sacct under Slurm, else from /proc on the host that ran it).
      ALTER TABLE attempts ADD COLUMN batch_id TEXT;
      ALTER TABLE attempts ADD COLUMN cpu_ms INTEGER;
      ALTER TABLE attempts ADD COLUMN max_rss_kib INTEGER;
      ALTER TABLE attempts ADD COLUMN usage_source TEXT;

      -- Every job attempt sent to Slurm as an array task, until the submitter has
      -- settled it (from the task's result file, or because Slurm says it is gone).
      CREATE TABLE slurm_tasks (
        experiment   TEXT NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
        job          INTEGER NOT NULL,
        attempt      INTEGER NOT NULL,
        submission   INTEGER NOT NULL REFERENCES slurm_submissions (id) ON DELETE CASCADE,
        task_id      INTEGER NOT NULL,
        settled      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (experiment, job, attempt)
      );
      CREATE INDEX slurm_tasks_open ON slurm_tasks (experiment, settled);
    `,
  },
  {
    version: 8,
    name: 'fast start',
    sql: `
      -- How a run or attempt started (JSON): restored from a template or a
      -- checkpoint, or booted, and why a restore fell back to a boot.
      ALTER TABLE attempts ADD COLUMN start TEXT;

      -- Runs gain a status: 'stopped' at a checkpoint, which \`vmwu restore\`
      -- continues. SQLite cannot change a CHECK: the table is rebuilt.
      CREATE TABLE runs_v8 (
        id          TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        finished_at TEXT,
        base        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('preparing', 'running', 'stopped', 'succeeded', 'failed', 'timeout', 'error')),
        exit_code   INTEGER,
        accel       TEXT,
        argv        TEXT NOT NULL,
        params      TEXT NOT NULL,
        resources   TEXT NOT NULL,
        out_dir     TEXT NOT NULL,
        run_dir     TEXT NOT NULL,
        owner       TEXT NOT NULL,
        qemu_pid    INTEGER,
        phases      TEXT,
        total_ms    INTEGER,
        error       TEXT,
        scratch_dir TEXT,
        usage       TEXT,
        start       TEXT,
        -- The unix socket its vmwu takes requests on (vmwu checkpoint), on the host that runs it.
        control     TEXT
      );
      INSERT INTO runs_v8 (id, created_at, finished_at, base, status, exit_code, accel, argv, params, resources, out_dir, run_dir, owner,
          qemu_pid, phases, total_ms, error, scratch_dir, usage)
        SELECT id, created_at, finished_at, base, status, exit_code, accel, argv, params, resources, out_dir, run_dir, owner,
          qemu_pid, phases, total_ms, error, scratch_dir, usage FROM runs;
      DROP TABLE runs;
      ALTER TABLE runs_v8 RENAME TO runs;
      CREATE INDEX runs_status ON runs (status);

      -- A saved running job: device and RAM state, its disks, what it needs to go
      -- on (checkpoint.json in dir). A run may have many; the latest is the one to restore.
      CREATE TABLE checkpoints (
        id          TEXT PRIMARY KEY,
        run_id      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        dir         TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        qemu        TEXT NOT NULL,
        stopped     INTEGER NOT NULL,
        experiment  TEXT,
        job         INTEGER,
        attempt     INTEGER,
        -- The blobs a restore needs (JSON digests): named here, gc keeps them.
        blobs       TEXT NOT NULL DEFAULT '[]'
      );
      CREATE INDEX checkpoints_run ON checkpoints (run_id, created_at);
      CREATE INDEX checkpoints_job ON checkpoints (experiment, job);
    `,
  },
  {
    version: 9,
    name: 'drained hosts',
    sql: `
      -- \`vmwu hosts drain\`: since when the host takes no jobs; its running ones move off.
      ALTER TABLE hosts ADD COLUMN drained_at TEXT;
    `,
  },
  {
    version: 10,
    name: 'datasets',
    sql: `
      -- \`vmwu data add\`: read-only erofs images in the blob store that jobs attach at /data/NAME.
      -- A name and version name one image; the digest keeps its blob from gc.
      CREATE TABLE datasets (
        name          TEXT NOT NULL,
        version       TEXT NOT NULL,
        digest        TEXT NOT NULL,
        format        TEXT NOT NULL,
        image_bytes   INTEGER NOT NULL,
        content_bytes INTEGER NOT NULL,
        files         INTEGER NOT NULL,
        source        TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        PRIMARY KEY (name, version)
      );
    `,
  },
  {
    version: 11,
    name: 'checkpoint origins',
    sql: `
      -- Where a checkpoint was made: 'local' (this store's vmwu, or a batch node sharing the store),
      -- or 'host:NAME', fetched from that SSH pool host. Only the pool restores a pool host's (docs/security.md).
      ALTER TABLE checkpoints ADD COLUMN origin TEXT NOT NULL DEFAULT 'local';
    `,
  },
  {
    version: 12,
    name: 'bases from container images',
    sql: `
      -- A base pulled from a container image (vmwu base pull) records the image: its
      -- reference, config (the process it runs) and its layers above the root; apk joins apt.
      -- SQLite cannot widen a CHECK, so the table is made anew.
      CREATE TABLE bases_new (
        name        TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        arch        TEXT NOT NULL,
        os          TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        boot        TEXT NOT NULL CHECK (boot IN ('kernel', 'bios')),
        kernel      TEXT,
        initrd      TEXT,
        root        TEXT NOT NULL,
        cmdline     TEXT NOT NULL DEFAULT '',
        size        INTEGER NOT NULL,
        virtual_size INTEGER NOT NULL,
        manifest    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        package_manager TEXT CHECK (package_manager IN ('apt', 'apk')),
        image       TEXT
      );
      INSERT INTO bases_new (name, digest, arch, os, description, boot, kernel, initrd, root, cmdline, size, virtual_size, manifest, created_at, package_manager)
        SELECT name, digest, arch, os, description, boot, kernel, initrd, root, cmdline, size, virtual_size, manifest, created_at, package_manager FROM bases;
      DROP TABLE bases;
      ALTER TABLE bases_new RENAME TO bases;
      CREATE INDEX bases_arch_os ON bases (arch, os);

      -- Each image layer converted to a qcow2 blob, by its key (its diff_id on the
      -- key below it): images that share lower layers share these. The first has no parent.
      CREATE TABLE image_layers (
        key         TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        parent      TEXT,
        diff_id     TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  TEXT NOT NULL
      );
    `,
  },
  {
    version: 13,
    name: 'experiments that wait for experiments',
    sql: `
      -- \`--after EXP[:succeeded|:finished]\`: the experiment it waits for and how that must end;
      -- waiting is 1 while its runner waits (it shows as waiting); ended_why says why it was
      -- cancelled without running (the one it waited for failed).
      ALTER TABLE experiments ADD COLUMN after_experiment TEXT;
      ALTER TABLE experiments ADD COLUMN after_condition TEXT CHECK (after_condition IN ('succeeded', 'finished'));
      ALTER TABLE experiments ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE experiments ADD COLUMN ended_why TEXT;
    `,
  },
  {
    version: 14,
    name: 'result cache',
    sql: `
      -- A succeeded job's collected outputs by the digest of everything that made them
      -- (src/run/job-key.ts): a job with the same key is not run again, its outputs are
      -- linked from these. source says whose they were, for people.
      CREATE TABLE result_cache (
        key         TEXT PRIMARY KEY,
        out_dir     TEXT NOT NULL,
        run_id      TEXT,
        source      TEXT NOT NULL,
        created_at  TEXT NOT NULL
      );
      -- The attempt that took a cached result instead of running: whose it was.
      ALTER TABLE attempts ADD COLUMN cached_from TEXT;
      -- \`vmwu sweep --no-cache\`: every job runs.
      ALTER TABLE experiments ADD COLUMN no_cache INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 15,
    name: 'read-only docker volumes as images',
    sql: `
      -- vmwu-docker's read-only volumes big enough to share (src/docker/volume-images.ts):
      -- the erofs image made of a host directory or file, by a fingerprint of what was
      -- there (names, types, sizes, times), so jobs that mount the same unchanged source
      -- attach the image instead of copying it. gc forgets unused ones. host: where the
      -- source was seen (a path and its inodes are that host's).
      CREATE TABLE volume_images (
        fingerprint TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        host        TEXT NOT NULL,
        digest      TEXT NOT NULL,
        bytes       INTEGER NOT NULL,
        used_at     TEXT NOT NULL
      );
    `,
  },
  {
    version: 16,
    name: 'result cache output digests',
    sql: `
      -- A cached result's files by their digests (JSON: path -> sha256:…, or link:TARGET),
      -- checked before a job takes them: outputs changed since (they are hard links, a
      -- change to one is a change to all) are not handed out again; the job runs.
      ALTER TABLE result_cache ADD COLUMN outputs TEXT;
    `,
  },
  {
    version: 17,
    name: 'runs answered by the result cache',
    sql: `
      -- \`vmwu run\` answered by the result cache (src/run/run-cache.ts): no VM ran; whose result it took.
      ALTER TABLE runs ADD COLUMN cached_from TEXT;
    `,
  },
  {
    version: 18,
    name: 'the VMs of a multi-VM attempt',
    sql: `
      -- An attempt of a job of several VMs (--nodes): each VM's run, machine, status,
      -- phases and usage (JSON, src/run/job-request.ts VmOutcome), for results and the dashboard.
      ALTER TABLE attempts ADD COLUMN vms TEXT;
    `,
  },
  {
    version: 19,
    name: 'experiment summaries, job parameters, job-table indexes',
    sql: `
      -- Experiments of 100,000 jobs (issue 25): what listings, \`vmwu status\`, the dashboard and
      -- its change hub read is kept with the rows instead of counted from them on every read.
      -- Jobs are stored by insertExperiment alone (src/sweep/records/lifecycle.ts), which adds
      -- their totals and parameters per batch. Every later change to a job or an attempt, by
      -- whichever code writes it (the runner, the Slurm submitter, a retry, a cancel, SQL by
      -- hand), is followed by the triggers below, in the transaction of that write. (A trigger
      -- on inserting jobs would cost a statement journal per job: creation 3 times slower.)

      -- Per experiment: its jobs by state, those pending after a failure (waiting to retry), its
      -- first start, its attempts (all, running, with a run id: the hub's signature), and the
      -- number and summed time of attempts that ran to an end (the ETA's mean attempt time).
      CREATE TABLE experiment_summaries (
        experiment        TEXT PRIMARY KEY REFERENCES experiments (name) ON DELETE CASCADE,
        pending           INTEGER NOT NULL DEFAULT 0,
        running           INTEGER NOT NULL DEFAULT 0,
        succeeded         INTEGER NOT NULL DEFAULT 0,
        failed            INTEGER NOT NULL DEFAULT 0,
        cancelled         INTEGER NOT NULL DEFAULT 0,
        retrying          INTEGER NOT NULL DEFAULT 0,
        first_started_at  TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        attempts_running  INTEGER NOT NULL DEFAULT 0,
        attempts_with_run INTEGER NOT NULL DEFAULT 0,
        timed             INTEGER NOT NULL DEFAULT 0,
        timed_ms          INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;

      -- A job's parameters one row each, so the job table filters by a value through an index
      -- rather than parsing every job's JSON. Written once, with the job.
      CREATE TABLE job_params (
        experiment  TEXT NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        idx         INTEGER NOT NULL,
        PRIMARY KEY (experiment, name, value, idx)
      ) WITHOUT ROWID;

      -- The latest attempt's figures on its job's row (the one whose number is the job's
      -- \`attempts\`), so the job table sorts by them through an index, without joining attempts.
      ALTER TABLE experiment_jobs ADD COLUMN last_run_id TEXT;
      ALTER TABLE experiment_jobs ADD COLUMN last_host TEXT;
      ALTER TABLE experiment_jobs ADD COLUMN last_total_ms INTEGER;
      ALTER TABLE experiment_jobs ADD COLUMN last_cpu_ms INTEGER;
      ALTER TABLE experiment_jobs ADD COLUMN last_max_rss_kib INTEGER;

      -- What a store of an earlier version holds, brought in once.
      UPDATE experiment_jobs SET (last_run_id, last_host, last_total_ms, last_cpu_ms, last_max_rss_kib) =
        (SELECT a.run_id, a.host, a.total_ms, a.cpu_ms, a.max_rss_kib FROM attempts a
          WHERE a.experiment = experiment_jobs.experiment AND a.job = experiment_jobs.idx AND a.attempt = experiment_jobs.attempts)
        WHERE attempts > 0;
      INSERT INTO job_params (experiment, name, value, idx)
        SELECT j.experiment, p.key, CAST(p.value AS TEXT), j.idx FROM experiment_jobs j, json_each(j.params) p;
      INSERT INTO experiment_summaries (experiment) SELECT name FROM experiments;
      UPDATE experiment_summaries SET (pending, running, succeeded, failed, cancelled, retrying, first_started_at) =
        (SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'running'), 0), COALESCE(SUM(state = 'succeeded'), 0),
            COALESCE(SUM(state = 'failed'), 0), COALESCE(SUM(state = 'cancelled'), 0), COALESCE(SUM(state = 'pending' AND failures > 0), 0), MIN(started_at)
          FROM experiment_jobs WHERE experiment = experiment_summaries.experiment);
      UPDATE experiment_summaries SET (attempts, attempts_running, attempts_with_run, timed, timed_ms) =
        (SELECT COUNT(*), COALESCE(SUM(status = 'running'), 0), COUNT(run_id),
            COALESCE(SUM(status IN ('succeeded', 'failed', 'timeout') AND total_ms IS NOT NULL), 0),
            COALESCE(SUM(CASE WHEN status IN ('succeeded', 'failed', 'timeout') THEN total_ms ELSE 0 END), 0)
          FROM attempts WHERE experiment = experiment_summaries.experiment);

      -- One index per sortable column of the job table, ending in the job index (the tie-break), so
      -- a page in any order, at any offset, is a walk along one index (NULLS LAST included).
      CREATE INDEX experiment_jobs_exit ON experiment_jobs (experiment, exit_code, idx);
      CREATE INDEX experiment_jobs_attempts ON experiment_jobs (experiment, attempts, idx);
      CREATE INDEX experiment_jobs_started ON experiment_jobs (experiment, started_at, idx);
      CREATE INDEX experiment_jobs_duration ON experiment_jobs (experiment, last_total_ms, idx);
      CREATE INDEX experiment_jobs_host ON experiment_jobs (experiment, last_host, idx);
      CREATE INDEX experiment_jobs_cpu ON experiment_jobs (experiment, last_cpu_ms, idx);
      CREATE INDEX experiment_jobs_rss ON experiment_jobs (experiment, last_max_rss_kib, idx);

      -- The summaries' keys never move: a job keeps its experiment and index, an attempt its job.
      CREATE TRIGGER experiment_jobs_keep_key BEFORE UPDATE OF experiment, idx ON experiment_jobs
        WHEN OLD.experiment IS NOT NEW.experiment OR OLD.idx IS NOT NEW.idx
        BEGIN SELECT RAISE(ABORT, 'a job keeps its experiment and index'); END;
      CREATE TRIGGER attempts_keep_key BEFORE UPDATE OF experiment, job, attempt ON attempts
        WHEN OLD.experiment IS NOT NEW.experiment OR OLD.job IS NOT NEW.job OR OLD.attempt IS NOT NEW.attempt
        BEGIN SELECT RAISE(ABORT, 'an attempt keeps its experiment, job and number'); END;

      CREATE TRIGGER experiments_summary AFTER INSERT ON experiments
        BEGIN INSERT OR IGNORE INTO experiment_summaries (experiment) VALUES (NEW.name); END;

      CREATE TRIGGER experiment_jobs_summary_delete AFTER DELETE ON experiment_jobs BEGIN
        UPDATE experiment_summaries SET
          pending = pending - (OLD.state = 'pending'), running = running - (OLD.state = 'running'),
          succeeded = succeeded - (OLD.state = 'succeeded'), failed = failed - (OLD.state = 'failed'),
          cancelled = cancelled - (OLD.state = 'cancelled'), retrying = retrying - (OLD.state = 'pending' AND OLD.failures > 0)
          WHERE experiment = OLD.experiment;
        -- By the whole key: deleting an experiment's jobs stays one index probe per parameter.
        DELETE FROM job_params WHERE (experiment, name, value, idx) IN
          (SELECT OLD.experiment, p.key, CAST(p.value AS TEXT), OLD.idx FROM json_each(OLD.params) p);
      END;
      CREATE TRIGGER experiment_jobs_summary_update AFTER UPDATE OF state, failures ON experiment_jobs
        WHEN OLD.state IS NOT NEW.state OR (OLD.failures > 0) IS NOT (NEW.failures > 0) BEGIN
        UPDATE experiment_summaries SET
          pending = pending - (OLD.state = 'pending') + (NEW.state = 'pending'), running = running - (OLD.state = 'running') + (NEW.state = 'running'),
          succeeded = succeeded - (OLD.state = 'succeeded') + (NEW.state = 'succeeded'), failed = failed - (OLD.state = 'failed') + (NEW.state = 'failed'),
          cancelled = cancelled - (OLD.state = 'cancelled') + (NEW.state = 'cancelled'),
          retrying = retrying - (OLD.state = 'pending' AND OLD.failures > 0) + (NEW.state = 'pending' AND NEW.failures > 0)
          WHERE experiment = NEW.experiment;
      END;
      -- The first start ever: a job's started_at is set once (COALESCE) and never cleared.
      CREATE TRIGGER experiment_jobs_summary_started AFTER UPDATE OF started_at ON experiment_jobs
        WHEN NEW.started_at IS NOT NULL BEGIN
        UPDATE experiment_summaries SET first_started_at = min(COALESCE(first_started_at, NEW.started_at), NEW.started_at)
          WHERE experiment = NEW.experiment;
      END;
      -- A job whose attempt number moves shows that attempt's figures (none until its row exists).
      CREATE TRIGGER experiment_jobs_latest AFTER UPDATE OF attempts ON experiment_jobs
        WHEN OLD.attempts IS NOT NEW.attempts BEGIN
        UPDATE experiment_jobs SET (last_run_id, last_host, last_total_ms, last_cpu_ms, last_max_rss_kib) =
          (SELECT run_id, host, total_ms, cpu_ms, max_rss_kib FROM attempts WHERE experiment = NEW.experiment AND job = NEW.idx AND attempt = NEW.attempts)
          WHERE experiment = NEW.experiment AND idx = NEW.idx;
      END;

      CREATE TRIGGER attempts_summary_insert AFTER INSERT ON attempts BEGIN
        UPDATE experiment_summaries SET
          attempts = attempts + 1, attempts_running = attempts_running + (NEW.status = 'running'),
          attempts_with_run = attempts_with_run + (NEW.run_id IS NOT NULL),
          timed = timed + (NEW.status IN ('succeeded', 'failed', 'timeout') AND NEW.total_ms IS NOT NULL),
          timed_ms = timed_ms + (CASE WHEN NEW.status IN ('succeeded', 'failed', 'timeout') THEN COALESCE(NEW.total_ms, 0) ELSE 0 END)
          WHERE experiment = NEW.experiment;
        UPDATE experiment_jobs SET last_run_id = NEW.run_id, last_host = NEW.host, last_total_ms = NEW.total_ms,
            last_cpu_ms = NEW.cpu_ms, last_max_rss_kib = NEW.max_rss_kib
          WHERE experiment = NEW.experiment AND idx = NEW.job AND attempts = NEW.attempt;
      END;
      CREATE TRIGGER attempts_summary_delete AFTER DELETE ON attempts BEGIN
        UPDATE experiment_summaries SET
          attempts = attempts - 1, attempts_running = attempts_running - (OLD.status = 'running'),
          attempts_with_run = attempts_with_run - (OLD.run_id IS NOT NULL),
          timed = timed - (OLD.status IN ('succeeded', 'failed', 'timeout') AND OLD.total_ms IS NOT NULL),
          timed_ms = timed_ms - (CASE WHEN OLD.status IN ('succeeded', 'failed', 'timeout') THEN COALESCE(OLD.total_ms, 0) ELSE 0 END)
          WHERE experiment = OLD.experiment;
        UPDATE experiment_jobs SET last_run_id = NULL, last_host = NULL, last_total_ms = NULL, last_cpu_ms = NULL, last_max_rss_kib = NULL
          WHERE experiment = OLD.experiment AND idx = OLD.job AND attempts = OLD.attempt;
      END;
      CREATE TRIGGER attempts_summary_update AFTER UPDATE OF status, run_id, total_ms ON attempts BEGIN
        UPDATE experiment_summaries SET
          attempts_running = attempts_running - (OLD.status = 'running') + (NEW.status = 'running'),
          attempts_with_run = attempts_with_run - (OLD.run_id IS NOT NULL) + (NEW.run_id IS NOT NULL),
          timed = timed - (OLD.status IN ('succeeded', 'failed', 'timeout') AND OLD.total_ms IS NOT NULL)
            + (NEW.status IN ('succeeded', 'failed', 'timeout') AND NEW.total_ms IS NOT NULL),
          timed_ms = timed_ms - (CASE WHEN OLD.status IN ('succeeded', 'failed', 'timeout') THEN COALESCE(OLD.total_ms, 0) ELSE 0 END)
            + (CASE WHEN NEW.status IN ('succeeded', 'failed', 'timeout') THEN COALESCE(NEW.total_ms, 0) ELSE 0 END)
          WHERE experiment = NEW.experiment;
      END;
      CREATE TRIGGER attempts_latest_update AFTER UPDATE OF run_id, host, total_ms, cpu_ms, max_rss_kib ON attempts BEGIN
        UPDATE experiment_jobs SET last_run_id = NEW.run_id, last_host = NEW.host, last_total_ms = NEW.total_ms,
            last_cpu_ms = NEW.cpu_ms, last_max_rss_kib = NEW.max_rss_kib
          WHERE experiment = NEW.experiment AND idx = NEW.job AND attempts = NEW.attempt;
      END;
    `,
  },
];
