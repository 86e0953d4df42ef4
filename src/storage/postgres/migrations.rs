//! The PostgreSQL schema's versioned migrations, embedded in the binary (`migrations/*.sql`),
//! and the range of schema versions this build runs on (docs/storage.md, "Migrations").
//!
//! At connect, under a session advisory lock (several instances starting together apply
//! each migration once; the others wait, then find it applied), every migration newer than
//! the database's version is applied in one transaction of its own, together with its row
//! in `schema_version`. Then the version is checked against [`SUPPORTED`].
//!
//! Rolling upgrades are expand-then-contract: a migration that old binaries can still run
//! on (a new table, a nullable column, an index) records `readers_from` unchanged, so
//! instances of the previous build keep running while the new one rolls out; a migration
//! that removes what an older build needs (the contract step, one release later) raises
//! `readers_from`, and an older build then refuses the schema with a message instead of
//! misreading it.

use std::ops::RangeInclusive;

use deadpool_postgres::Object;

use crate::storage::StorageError;

/// One migration: its version, the oldest build (by the newest schema it knows) that still
/// runs correctly on the schema after it, and its SQL.
struct Migration {
    version: i32,
    readers_from: i32,
    sql: &'static str,
}

/// Every migration, oldest first; versions are consecutive from 1.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        readers_from: 1,
        sql: include_str!("migrations/0001_initial.sql"),
    },
    // The change feed: new tables only (expand), so schema-1 builds keep running on it.
    Migration {
        version: 2,
        readers_from: 1,
        sql: include_str!("migrations/0002_changes.sql"),
    },
    // Shared short-lived state: a new table only (expand); builds of schema 1 and 2 run on it.
    Migration {
        version: 3,
        readers_from: 1,
        sql: include_str!("migrations/0003_shared_state.sql"),
    },
];

/// The oldest schema version this build runs on.
pub const MIN_SCHEMA: i32 = 1;
/// The newest schema version this build knows (its last migration), applied at connect.
pub const MAX_SCHEMA: i32 = 3;
/// The schema versions this build runs on: `MIN_SCHEMA..=MAX_SCHEMA`, and also any newer
/// one whose `readers_from` is at most `MAX_SCHEMA` (a later build's expand step).
pub const SUPPORTED: RangeInclusive<i32> = MIN_SCHEMA..=MAX_SCHEMA;

/// Key of the session advisory lock held while migrating (one-key form; "oauthmcp").
const MIGRATION_LOCK: i64 = 0x6f61_7574_686d_6370;

/// Applies the pending migrations under the migration lock, then checks the version;
/// answers the schema version in force.
pub async fn migrate(client: &mut Object) -> Result<i32, StorageError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let migrated = migrate_locked(client).await;
    // Unlocked on every path (a session lock outlives a failed transaction); the pooled
    // connection is reused, so the lock must not stay with it.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let version = migrated?;
    unlocked?;
    Ok(version)
}

async fn migrate_locked(client: &mut Object) -> Result<i32, StorageError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version      integer PRIMARY KEY,
                 readers_from integer NOT NULL,
                 applied_at   timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let (mut version, mut readers_from) = current(client).await?;
    check(version, readers_from, false)?;
    let from = version;
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version, readers_from) VALUES ($1, $2)",
            &[&m.version, &m.readers_from],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, "applied PostgreSQL schema migration");
        (version, readers_from) = (m.version, m.readers_from);
    }
    check(version, readers_from, true)?;
    Ok(version)
}

/// The newest applied version and its `readers_from`; `(0, 0)` for an empty database.
/// The schema version in force, checked against this build's range (readiness: another
/// instance may have migrated past what this one runs on).
pub async fn check_current(client: &Object) -> Result<i32, StorageError> {
    let (version, readers_from) = current(client).await?;
    check(version, readers_from, false)?;
    Ok(version)
}

async fn current(client: &Object) -> Result<(i32, i32), StorageError> {
    let row = client
        .query_opt(
            "SELECT version, readers_from FROM schema_version ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(match row {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, 0),
    })
}

/// Whether this build runs on schema `version` (with its `readers_from`). Before the
/// migrations (`migrated` false) an older version is fine: they bring it up; after them the
/// version must be in [`SUPPORTED`], or newer with a `readers_from` that admits this build.
fn check(version: i32, readers_from: i32, migrated: bool) -> Result<(), StorageError> {
    let runs = if version > MAX_SCHEMA {
        readers_from <= MAX_SCHEMA
    } else {
        !migrated || SUPPORTED.contains(&version)
    };
    if runs {
        Ok(())
    } else {
        Err(StorageError::UnsupportedSchema {
            found: version,
            readers_from,
            min: MIN_SCHEMA,
            max: MAX_SCHEMA,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_end_at_max() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i32::try_from(i).unwrap() + 1);
            assert!(m.readers_from <= m.version);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, MAX_SCHEMA);
    }

    #[test]
    fn a_newer_schema_runs_only_while_it_still_admits_this_build() {
        assert!(check(0, 0, false).is_ok(), "an empty database is migrated");
        assert!(check(0, 0, true).is_err(), "but never run on unmigrated");
        assert!(check(MAX_SCHEMA, 1, true).is_ok());
        // A later build's expand step: still readable by this one.
        assert!(check(MAX_SCHEMA + 1, MAX_SCHEMA, false).is_ok());
        assert!(check(MAX_SCHEMA + 1, MAX_SCHEMA, true).is_ok());
        // Its contract step: refused (before anything is applied), with a message.
        let err = check(MAX_SCHEMA + 2, MAX_SCHEMA + 1, false).unwrap_err();
        assert!(matches!(err, StorageError::UnsupportedSchema { .. }));
        assert!(err.to_string().contains("schema version"), "{err}");
    }
}
