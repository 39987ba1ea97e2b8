//! One replica: the semantics of the embedded stores, on PostgreSQL.

use std::time::{Duration, Instant};

use order_management::Order;
use order_management::store::postgres::{self, LATEST_VERSION};
use order_management::store::{MemoryStore, OrderStore, PgOptions, PgStore, StoreError, rule};

use super::harness::Postgres;
use super::{fresh, order};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_get_count_and_a_taken_id() {
    let Some(pg) = Postgres::start() else { return };
    let (_, store) = fresh(&pg, "basic").await;
    assert_eq!(store.count().await.unwrap(), 0);
    assert_eq!(store.get("1").await.unwrap(), None);

    let first = Order {
        price: 0.1,
        ..order("1", &["Amazon Echo", "İstanbul Çay"])
    };
    store.insert(first.clone(), None).await.unwrap();
    assert_eq!(store.get("1").await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.insert(order("1", &["other"]), None).await,
        Err(StoreError::AlreadyExists("1".into()))
    );
    assert_eq!(store.get("1").await.unwrap(), Some(first), "unchanged");
    assert_eq!(store.count().await.unwrap(), 1);

    // PostgreSQL text cannot hold U+0000: refused up front, clearly.
    let err = store.insert(order("2", &["a\0b"]), None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Failed(m) if m.contains("NUL")),
        "{err:?}"
    );
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_happens_once_and_only_into_an_empty_store() {
    let Some(pg) = Postgres::start() else { return };
    let (url, store) = fresh(&pg, "seed").await;
    let other = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    let seed = order_management::seed::order_101();
    let (a, b) = tokio::join!(
        store.seed_if_empty(seed.clone()),
        other.seed_if_empty(seed.clone())
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|x| **x).count(),
        1,
        "exactly one replica seeds"
    );
    assert_eq!(store.get("101").await.unwrap(), Some(seed.clone()));
    assert!(!store.seed_if_empty(seed).await.unwrap());
    assert_eq!(store.count().await.unwrap(), 1);

    let (_, nonempty) = fresh(&pg, "seed2").await;
    nonempty.insert(order("7", &["x"]), None).await.unwrap();
    assert!(
        !nonempty
            .seed_if_empty(order_management::seed::order_101())
            .await
            .unwrap()
    );
    assert_eq!(nonempty.get("101").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_all_is_all_or_nothing_and_names_the_first_missing_id() {
    let Some(pg) = Postgres::start() else { return };
    let (_, store) = fresh(&pg, "update").await;
    for id in ["a", "b", "c"] {
        store.insert(order(id, &["old"]), None).await.unwrap();
    }
    // Missing ids "y" then "x" in request order: "y" is named, though "x" sorts first.
    let err = store
        .update_all(
            vec![
                order("a", &["new"]),
                order("y", &["new"]),
                order("b", &["new"]),
                order("x", &["new"]),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::NotFound("y".into()));
    for id in ["a", "b", "c"] {
        assert_eq!(store.get(id).await.unwrap().unwrap().items, ["old"], "{id}");
    }

    let new_c = Order {
        description: "changed".into(),
        price: 99.0,
        destination: "Busan".into(),
        ..order("c", &["New C", "second"])
    };
    store
        .update_all(vec![new_c.clone(), order("a", &["A2"])], None)
        .await
        .unwrap();
    assert_eq!(store.get("c").await.unwrap(), Some(new_c));
    assert_eq!(store.get("a").await.unwrap().unwrap().items, ["A2"]);
    assert_eq!(store.get("b").await.unwrap().unwrap().items, ["old"]);
    // The folded items follow the update: searches see the new items.
    let page = store.search("new c", None, 10).await.unwrap();
    assert_eq!(ids(&page.orders), ["c"]);
    assert!(store.search("old", None, 10).await.unwrap().orders.len() == 1);
}

fn ids(orders: &[Order]) -> Vec<&str> {
    orders.iter().map(|o| o.id.as_str()).collect()
}

/// Pieces of items: cases, the letters whose lowercase is longer
/// ('İ' -> "i̇") or special ('ß', final 'Σ'), and LIKE's own characters.
const PIECES: &[&str] = &[
    "a", "A", "b", "B", "İ", "i", "I", "ß", "SS", "ss", "Σ", "σ", "ς", "%", "_", "\\", "é", "É",
    " ", "-", "x", "\u{307}",
];

fn random_text(rng: &mut fastrand::Rng, max: usize) -> String {
    let n = rng.usize(1..=max);
    (0..n).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
}

/// Walks a whole search in steps of `budget`, checking each step.
async fn walk(store: &dyn OrderStore, query: &str, budget: usize) -> Vec<Order> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.search(query, after.as_deref(), budget).await.unwrap();
        assert!(
            page.examined <= budget,
            "{query:?}: examined {}",
            page.examined
        );
        assert!(page.orders.len() <= page.examined);
        for o in &page.orders {
            assert!(
                after.as_deref().is_none_or(|a| o.id.as_str() > a),
                "keyset order"
            );
        }
        out.extend(page.orders);
        match page.next {
            Some(next) => {
                assert!(
                    after.as_deref().is_none_or(|a| next.as_str() > a),
                    "progress"
                );
                after = Some(next);
            }
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_equals_brute_force_over_a_random_store() {
    let Some(pg) = Postgres::start() else { return };
    let (_, store) = fresh(&pg, "search").await;
    let mut rng = fastrand::Rng::with_seed(15);
    let mut all = Vec::new();
    for i in 0..400 {
        let items = (0..rng.usize(1..=3))
            .map(|_| random_text(&mut rng, 6))
            .collect();
        // Ids of mixed widths and cases: keyset pages must follow byte order.
        let id = match i % 3 {
            0 => format!("{i}"),
            1 => format!("K-{i:04}"),
            _ => format!("k-{}", 1000 - i),
        };
        all.push(Order {
            id,
            items,
            ..order("", &[])
        });
    }
    store.insert_many(all.clone()).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 400);
    let memory = MemoryStore::with_orders(all.clone());
    all.sort_by(|a, b| a.id.cmp(&b.id));

    let mut queries: Vec<String> = vec![
        "".into(),
        "İ".into(),
        "i\u{307}".into(),
        "ß".into(),
        "SS".into(),
        "σ".into(),
        "%".into(),
        "_".into(),
        "\\".into(),
        "a%".into(),
        "\n".into(),
        "a\nb".into(),
    ];
    for _ in 0..60 {
        // Substrings of stored items (hits), in any case, and random text (mostly misses).
        let o = &all[rng.usize(..all.len())];
        let item: Vec<char> = o.items[rng.usize(..o.items.len())].chars().collect();
        let start = rng.usize(..item.len());
        let end = rng.usize(start..=item.len());
        let piece: String = item[start..end].iter().collect();
        queries.push(if rng.bool() {
            piece.to_uppercase()
        } else {
            piece
        });
        queries.push(random_text(&mut rng, 4));
    }
    for query in &queries {
        let folded = rule::fold(query);
        let want: Vec<&str> = all
            .iter()
            .filter(|o| rule::matches(o, &folded))
            .map(|o| o.id.as_str())
            .collect();
        for budget in [1, 7, 64, 1000] {
            let got = walk(&store, query, budget).await;
            assert_eq!(ids(&got), want, "query {query:?}, budget {budget}");
        }
        let embedded = walk(&memory, query, 50).await;
        assert_eq!(ids(&embedded), want, "the embedded store, query {query:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_under_concurrent_starts_and_a_newer_schema_is_refused() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.create_database("migrate").await;

    // Without migrations, an empty database is refused with what to do.
    let no_migrate = PgOptions {
        migrate: false,
        ..PgOptions::default()
    };
    let err = PgStore::connect(&url, no_migrate.clone())
        .await
        .unwrap_err();
    assert!(err.0.contains("server migrate"), "{err}");

    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, PgOptions::default()).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let admin = pg.connect("migrate").await;
    let row = admin
        .query_one(
            "SELECT count(*), max(version) FROM order_schema_migrations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, Option<i32>>(1)),
        (LATEST_VERSION as i64, Some(LATEST_VERSION))
    );
    let report = postgres::migrate(&url).await.unwrap();
    assert!(report.applied.is_empty(), "{report}");
    assert_eq!((report.from, report.to), (LATEST_VERSION, LATEST_VERSION));
    PgStore::connect(&url, no_migrate).await.unwrap();

    // A newer release migrated this database: refuse, naming both versions.
    let newer = LATEST_VERSION + 1;
    admin
        .execute(
            "INSERT INTO order_schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&newer],
        )
        .await
        .unwrap();
    for err in [
        PgStore::connect(&url, PgOptions::default())
            .await
            .unwrap_err()
            .0,
        postgres::migrate(&url).await.unwrap_err().0,
    ] {
        assert!(err.contains(&format!("schema version {newer}")), "{err}");
        assert!(
            err.contains(&format!("this binary's {LATEST_VERSION}")),
            "{err}"
        );
    }

    // A fresh database: the report says what was applied.
    let url2 = pg.create_database("migrate2").await;
    let report = postgres::migrate(&url2).await.unwrap();
    assert_eq!(
        (report.from, report.to, report.applied.len()),
        (0, LATEST_VERSION, LATEST_VERSION as usize),
        "{report}"
    );
}

/// How many of our connections wait on a lock.
pub(super) async fn waiting_on_locks(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'order-management' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_cancels_the_blocked_write_and_writes_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let (_, store) = fresh(&pg, "deadline").await;
    store.insert(order("a", &["old"]), None).await.unwrap();
    let holder = pg.connect("deadline").await;
    let observer = pg.connect("deadline").await;

    // Another session holds the row lock: our update blocks on it.
    holder
        .batch_execute("BEGIN; SELECT * FROM orders WHERE id = 'a' FOR UPDATE")
        .await
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let result = store
        .update_all(vec![order("a", &["new"])], Some(deadline))
        .await;
    let took = started.elapsed();
    assert_eq!(result, Err(StoreError::DeadlineExceeded));
    assert!(
        took < Duration::from_millis(1500),
        "answered {took:?} after the call began"
    );
    // The blocked statement was cancelled on the server, not left waiting.
    let cancelled_by = Instant::now() + Duration::from_secs(5);
    while waiting_on_locks(&observer).await > 0 {
        assert!(
            Instant::now() < cancelled_by,
            "the blocked UPDATE still waits"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().items, ["old"]);

    // An insert blocked behind another session's uncommitted insert of its id.
    holder
        .batch_execute("BEGIN; INSERT INTO orders VALUES ('z', '{held}', '', 1, '', 'held')")
        .await
        .unwrap();
    let result = store
        .insert(
            order("z", &["mine"]),
            Some(Instant::now() + Duration::from_millis(200)),
        )
        .await;
    assert_eq!(result, Err(StoreError::DeadlineExceeded));
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.get("z").await.unwrap(), None, "nothing written");

    // The store works on (its pool replaced the abandoned connections).
    store.insert(order("z", &["mine"]), None).await.unwrap();
    store
        .update_all(
            vec![order("a", &["new"])],
            Some(Instant::now() + Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().items, ["new"]);

    // A deadline already past: nothing is sent.
    assert_eq!(
        store
            .insert(order("late", &["x"]), Some(Instant::now()))
            .await,
        Err(StoreError::DeadlineExceeded)
    );
    assert_eq!(store.get("late").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_never_show_the_password() {
    let Some(pg) = Postgres::start() else { return };
    let _ = pg.create_database("pw").await;
    let missing = pg.socket_dir().join("nowhere");
    let url = format!(
        "postgres://postgres:hunter2@{}/pw",
        missing.display().to_string().replace('/', "%2F")
    );
    let options = PgOptions {
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let err = PgStore::connect(&url, options.clone()).await.unwrap_err();
    assert!(!err.0.contains("hunter2"), "{err}");
    assert!(
        err.0.contains("postgres://postgres@"),
        "names the database: {err}"
    );
    let err = postgres::migrate(&url).await.unwrap_err();
    assert!(!err.0.contains("hunter2"), "{err}");
    let err = PgStore::connect("postgres://postgres:hunter2@h/db?sslmode=nope", options)
        .await
        .unwrap_err();
    assert!(
        !err.0.contains("hunter2") && err.0.contains("sslmode"),
        "{err}"
    );
}
