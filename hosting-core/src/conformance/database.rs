//! The [`DatabaseBackend`] contract, proven with real logins through
//! [`DatabaseBackend::can_connect`]. Every function cleans up what it created.

use std::str::FromStr;

use crate::conformance::unique_suffix;
use crate::database::{DatabaseBackend, DatabaseOptions};
use crate::error::Error;
use crate::types::{DbName, DbUserName, Password};

/// Every function of this suite, in order.
pub async fn run_all(backend: &dyn DatabaseBackend, options: &DatabaseOptions) {
    databases_lifecycle(backend, options).await;
    users_are_isolated(backend, options).await;
    rotated_password_replaces_the_old(backend, options).await;
    hostile_passwords_work_exactly(backend, options).await;
    hostile_names_are_rejected(backend).await;
}

fn name(prefix: &str) -> DbName {
    let raw = format!("{prefix}_{}", unique_suffix());
    DbName::from_str(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn user(prefix: &str) -> DbUserName {
    let raw = format!("{prefix}_{}", unique_suffix());
    DbUserName::from_str(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn password(raw: &str) -> Password {
    Password::from_str(raw).unwrap_or_else(|e| panic!("suite password: {e}"))
}

/// Create, list, measure and drop a database; duplicates and missing ones are reported as such.
pub async fn databases_lifecycle(backend: &dyn DatabaseBackend, options: &DatabaseOptions) {
    let db = name("life");
    backend
        .create_database(&db, options)
        .await
        .expect("create database");
    let listed = backend.list_databases().await.expect("list");
    assert!(listed.contains(&db), "{db} listed in {listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "list is sorted");
    assert!(
        listed
            .iter()
            .all(|d| !["mysql", "postgres", "information_schema", "sys"].contains(&d.as_str())),
        "system databases are not listed: {listed:?}"
    );
    // Only measurable: MySQL/MariaDB count table data, so a database without tables is 0 bytes.
    // That the size grows with a customer's rows is checked with a real login, outside the suite.
    backend.database_size(&db).await.expect("size");
    match backend.create_database(&db, options).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("second create: expected AlreadyExists, got {other:?}"),
    }
    backend.drop_database(&db).await.expect("drop");
    assert!(!backend.list_databases().await.expect("list").contains(&db));
    match backend.drop_database(&db).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("second drop: expected NotFound, got {other:?}"),
    }
    match backend.database_size(&db).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("size of a dropped database: expected NotFound, got {other:?}"),
    }
}

/// A user reaches its own database and no other; revoking and dropping lock it out.
pub async fn users_are_isolated(backend: &dyn DatabaseBackend, options: &DatabaseOptions) {
    let (db_a, db_b) = (name("iso_a"), name("iso_b"));
    let (user_a, user_b) = (user("ua"), user("ub"));
    let (pw_a, pw_b) = (password("alpha-secret-1"), password("bravo-secret-2"));
    for db in [&db_a, &db_b] {
        backend.create_database(db, options).await.expect("create");
    }
    backend.create_user(&user_a, &pw_a).await.expect("user a");
    backend.create_user(&user_b, &pw_b).await.expect("user b");
    match backend.create_user(&user_a, &pw_a).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("second create_user: expected AlreadyExists, got {other:?}"),
    }
    let users = backend.list_users().await.expect("list users");
    assert!(
        users.contains(&user_a) && users.contains(&user_b),
        "{users:?}"
    );

    assert!(
        !backend
            .can_connect(&user_a, &pw_a, &db_a)
            .await
            .expect("probe"),
        "a new user has no access before the grant"
    );
    backend.grant_all(&user_a, &db_a).await.expect("grant a");
    backend.grant_all(&user_b, &db_b).await.expect("grant b");

    let can = |u, p, d| backend.can_connect(u, p, d);
    assert!(can(&user_a, &pw_a, &db_a).await.expect("probe"), "a on a");
    assert!(can(&user_b, &pw_b, &db_b).await.expect("probe"), "b on b");
    assert!(!can(&user_a, &pw_a, &db_b).await.expect("probe"), "a on b");
    assert!(!can(&user_b, &pw_b, &db_a).await.expect("probe"), "b on a");
    assert!(
        !can(&user_a, &pw_b, &db_a).await.expect("probe"),
        "a with b's password"
    );

    backend.revoke_all(&user_a, &db_a).await.expect("revoke");
    assert!(
        !can(&user_a, &pw_a, &db_a).await.expect("probe"),
        "revoked user is refused"
    );

    backend.drop_user(&user_b).await.expect("drop user");
    assert!(
        !can(&user_b, &pw_b, &db_b).await.expect("probe"),
        "dropped user can no longer log in"
    );
    match backend.drop_user(&user_b).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("second drop_user: expected NotFound, got {other:?}"),
    }
    match backend.grant_all(&user_a, &name("missing")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("grant on a missing database: expected NotFound, got {other:?}"),
    }
    backend.drop_user(&user_a).await.expect("drop user a");
    for db in [&db_a, &db_b] {
        backend.drop_database(db).await.expect("drop");
    }
}

/// After a rotation the old password is refused and the new one works.
pub async fn rotated_password_replaces_the_old(
    backend: &dyn DatabaseBackend,
    options: &DatabaseOptions,
) {
    let db = name("rot");
    let u = user("rot");
    let (old, new) = (password("old-password-1"), password("new-password-2"));
    backend.create_database(&db, options).await.expect("create");
    backend.create_user(&u, &old).await.expect("user");
    backend.grant_all(&u, &db).await.expect("grant");
    assert!(backend.can_connect(&u, &old, &db).await.expect("probe"));
    backend.rotate_password(&u, &new).await.expect("rotate");
    assert!(
        !backend.can_connect(&u, &old, &db).await.expect("probe"),
        "old refused"
    );
    assert!(
        backend.can_connect(&u, &new, &db).await.expect("probe"),
        "new works"
    );
    match backend.rotate_password(&user("nobody"), &new).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("rotating a missing user: expected NotFound, got {other:?}"),
    }
    backend.drop_user(&u).await.expect("drop user");
    backend.drop_database(&db).await.expect("drop");
}

/// Passwords holding quotes, backslashes, semicolons and SQL work exactly as typed and are
/// never run as SQL.
pub async fn hostile_passwords_work_exactly(
    backend: &dyn DatabaseBackend,
    options: &DatabaseOptions,
) {
    let db = name("hostile");
    backend.create_database(&db, options).await.expect("create");
    let hostile = [
        format!("x'; DROP DATABASE {db}; --"),
        "quote\"double\"quote".to_owned(),
        r"back\slash\\es\'".to_owned(),
        "semi;colon;$$dollar$$;`tick`".to_owned(),
        "pa%ss_wo*rd?%_".to_owned(),
        "ünïcødé-pässwörd-✓".to_owned(),
    ];
    for raw in &hostile {
        let u = user("hp");
        let pw = password(raw);
        backend
            .create_user(&u, &pw)
            .await
            .expect("create with hostile password");
        backend.grant_all(&u, &db).await.expect("grant");
        assert!(
            backend.can_connect(&u, &pw, &db).await.expect("probe"),
            "the exact password works: {raw:?}"
        );
        let altered = password(&format!("{raw}x"));
        assert!(
            !backend.can_connect(&u, &altered, &db).await.expect("probe"),
            "a different password is refused: {raw:?}"
        );
        backend.drop_user(&u).await.expect("drop user");
    }
    assert!(
        backend.list_databases().await.expect("list").contains(&db),
        "no password was executed as SQL"
    );
    backend.drop_database(&db).await.expect("drop");
}

/// Names that could break out of an identifier never become a [`DbName`] or [`DbUserName`].
pub async fn hostile_names_are_rejected(backend: &dyn DatabaseBackend) {
    let before = backend.list_databases().await.expect("list");
    for raw in [
        "a`; DROP DATABASE mysql; --",
        "a\"; DROP ROLE postgres; --",
        "x' OR '1'='1",
        "a\\b",
        "a;b",
        "a b",
        "a\nb",
        "a%",
        "Upper",
        "mysql",
        "postgres",
        "pg_signal_backend",
        "",
    ] {
        assert!(DbName::from_str(raw).is_err(), "database name {raw:?}");
        assert!(DbUserName::from_str(raw).is_err(), "user name {raw:?}");
    }
    assert_eq!(backend.list_databases().await.expect("list"), before);
}
