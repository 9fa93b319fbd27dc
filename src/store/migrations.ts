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
];
