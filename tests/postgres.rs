//! `destination.postgres` against a real PostgreSQL server on loopback, which
//! `scripts/test.sh` starts (`scripts/postgres.sh`) and names in `TRIBUTARY_TEST_POSTGRES`.
//! Each test loads a database of its own; the tables are read back with SQL.

mod common;

use std::process::Stdio;

use common::{Scratch, flow, node, stderr, tributary_in};
use serde_json::{Value, json};

const PASSPHRASE: &str = "pg-test-passphrase";
/// The superuser `scripts/postgres.sh` makes.
const SUPERUSER: (&str, &str) = ("tributary", "tributary-test");

/// A database of the test's own on the test server.
struct Database {
    host: String,
    port: u16,
    name: String,
    /// Made by the test, and dropped with it.
    owned: bool,
}

impl Database {
    fn new(name: &str) -> Database {
        let address = std::env::var("TRIBUTARY_TEST_POSTGRES").expect(
            "TRIBUTARY_TEST_POSTGRES names the test server: run scripts/test.sh, or `source scripts/postgres.sh && start_test_postgres` first",
        );
        let (host, port) = address.rsplit_once(':').unwrap();
        let db = Database {
            host: host.into(),
            port: port.parse().unwrap(),
            name: format!("{name}_{}", std::process::id()),
            owned: true,
        };
        let admin = db.other("postgres", db.port);
        admin.sql(&format!("DROP DATABASE IF EXISTS {}", db.name));
        admin.sql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    /// Another database, or a port, of the same server, not made by the test.
    fn other(&self, name: &str, port: u16) -> Database {
        Database {
            host: self.host.clone(),
            port,
            name: name.into(),
            owned: false,
        }
    }

    /// Runs SQL as the superuser; the rows of the last statement, every value as text.
    fn sql(&self, statements: &str) -> Vec<Vec<Option<String>>> {
        self.try_sql(statements)
            .unwrap_or_else(|e| panic!("{statements}: {e}"))
    }

    fn try_sql(&self, statements: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::Config::new()
                .host(&self.host)
                .port(self.port)
                .user(SUPERUSER.0)
                .password(SUPERUSER.1)
                .dbname(&self.name)
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut rows = Vec::new();
            for message in client
                .simple_query(statements)
                .await
                .map_err(|e| format!("{e:?}"))?
            {
                match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(String::from))
                            .collect(),
                    ),
                    tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
                    _ => {}
                }
            }
            Ok(rows)
        })
    }

    /// The rows of a query as `|`-joined text, `∅` for null.
    fn rows(&self, query: &str) -> Vec<String> {
        self.sql(query)
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.unwrap_or_else(|| "∅".into()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    fn count(&self, table: &str) -> i64 {
        self.sql(&format!("SELECT count(*) FROM {table}"))[0][0]
            .as_ref()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Adds the connection `pg` for `user` to a scratch installation.
    fn connect(&self, scratch: &Scratch, user: &str, password: &str) {
        common::add_connection(
            scratch,
            PASSPHRASE,
            "pg",
            "postgres",
            "basic",
            &[
                format!("host={}", self.host),
                format!("port={}", self.port),
                format!("database={}", self.name),
                format!("username={user}"),
            ],
            password,
        );
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.owned && !std::thread::panicking() {
            let admin = self.other("postgres", self.port);
            let _ = admin.try_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A CSV file to a PostgreSQL table, with the file's types set.
fn load_flow(file: &str, load: Value) -> Value {
    flow(
        vec![
            node(
                "deals",
                "source.file",
                json!({"path": file, "schema": {
                    "id": "integer", "amount": "decimal(12,2)", "closed": "timestamp",
                    "day": "date", "won": "boolean"}}),
            ),
            node("db", "destination.postgres", load),
        ],
        &[("deals", "db")],
    )
}

fn run(scratch: &Scratch, flow: &Value) -> std::process::Output {
    common::run_in(scratch, PASSPHRASE, flow, &[])
}

/// Runs a flow that must fail; the run record's error message.
fn failure(scratch: &Scratch, flow: &Value) -> String {
    let out = run(scratch, flow);
    assert!(!out.status.success(), "{}", common::stdout(&out));
    let record: Value = serde_json::from_str(&common::stdout(&out))
        .unwrap_or_else(|_| panic!("{}", common::said(&out)));
    record["error"]["message"].as_str().unwrap().to_string()
}

const DEALS: &str = "id,name,amount,closed,day,won
1,Acme,1200.50,2024-05-01T12:30:00Z,2024-05-01,true
2,\"Globex, \"\"EU\"\"\",99.99,2024-05-02T23:59:59.123456Z,2024-05-02,false
3,Tab\there,0.01,2024-05-03T00:00:00+02:00,2024-05-03,
4,,12345678.90,,2024-05-04,true
";

#[test]
fn insert_creates_the_table_and_values_keep_their_types() {
    let db = Database::new("insert_types");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    scratch.write("deals.csv", DEALS);
    let flow = load_flow("deals.csv", json!({"connection": "pg", "table": "Deals"}));
    let record = common::ran(&run(&scratch, &flow));
    assert_eq!(record["records_written"], json!(4), "{record}");

    assert_eq!(
        db.rows(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
             WHERE table_name = 'Deals' ORDER BY ordinal_position"
        ),
        [
            "id|bigint|64|0",
            "name|text|∅|∅",
            "amount|numeric|12|2",
            "closed|timestamp with time zone|∅|∅",
            "day|date|∅|∅",
            "won|boolean|∅|∅",
        ]
    );
    assert_eq!(
        db.rows(
            "SET TIME ZONE 'UTC'; SELECT id, name, amount, closed, day, won FROM \"Deals\" ORDER BY id"
        ),
        [
            "1|Acme|1200.50|2024-05-01 12:30:00+00|2024-05-01|t",
            "2|Globex, \"EU\"|99.99|2024-05-02 23:59:59.123456+00|2024-05-02|f",
            "3|Tab\there|0.01|2024-05-02 22:00:00+00|2024-05-03|∅",
            "4||12345678.90|∅|2024-05-04|t",
        ]
    );
    // The load is recorded, so a commit cut short can be settled later.
    assert_eq!(
        db.rows("SELECT table_name, records FROM _tributary_loads"),
        ["Deals|4"]
    );
    // Insert adds: a second run doubles the rows, as asked.
    common::ran(&run(&scratch, &flow));
    assert_eq!(db.count("\"Deals\""), 8);
}

/// A table takes the records as the run commits them: it cannot hold a part's output
/// back for one commit of all the parts, so a partitioned run is refused before it reads,
/// and the table is never made.
#[test]
fn a_partitioned_run_into_a_table_is_refused_before_it_reads() {
    let db = Database::new("partitioned");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    scratch.write("deals.csv", DEALS);
    let flow = load_flow("deals.csv", json!({"connection": "pg", "table": "parts"}));
    let out = common::run_in(
        &scratch,
        PASSPHRASE,
        &flow,
        &[
            "--partitions",
            "2",
            "--partition",
            "0",
            "--run-id",
            "p",
            "--stage-only",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let said = common::said(&out);
    assert!(
        said.contains("`db` (destination.postgres) publishes as it writes and cannot keep a part's output for one commit of all the parts; write the partitioned run to a local folder or S3"),
        "{said}"
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM information_schema.tables WHERE table_name = 'parts'"),
        ["0"]
    );
}

#[test]
fn upsert_updates_by_key_and_the_last_record_of_a_key_wins() {
    let db = Database::new("upsert");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    scratch.write("deals.csv", DEALS);
    let mut flow = load_flow(
        "deals.csv",
        json!({"connection": "pg", "table": "deals", "mode": "upsert", "keys": ["id"]}),
    );
    common::ran(&run(&scratch, &flow));
    assert_eq!(db.count("deals"), 4);

    scratch.write(
        "changes.csv",
        "id,name,amount,closed,day,won
3,Initech,10.00,2024-06-01T00:00:00Z,2024-06-01,true
5,Umbrella,5.00,2024-06-02T00:00:00Z,2024-06-02,false
3,Initech Ltd,11.00,2024-06-01T00:00:00Z,2024-06-01,true
",
    );
    flow["nodes"][0]["config"]["path"] = json!("changes.csv");
    let record = common::ran(&run(&scratch, &flow));
    assert_eq!(record["records_written"], json!(3), "{record}");
    assert_eq!(
        db.rows("SELECT id, name, amount, won FROM deals ORDER BY id"),
        [
            "1|Acme|1200.50|t",
            "2|Globex, \"EU\"|99.99|f",
            "3|Initech Ltd|11.00|t",
            "4||12345678.90|t",
            "5|Umbrella|5.00|f",
        ]
    );
    // The table it made has the key as its primary key.
    assert_eq!(
        db.rows(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = 'deals'::regclass AND i.indisprimary"
        ),
        ["id"]
    );

    // An existing table without a unique index on the keys is refused before loading.
    db.sql("CREATE TABLE plain (id bigint, name text, amount numeric(12,2), closed timestamptz, day date, won boolean)");
    flow["nodes"][1]["config"]["table"] = json!("plain");
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("needs a primary key or a unique index")
            && said.contains("CREATE UNIQUE INDEX ON \"public\".\"plain\" (\"id\")"),
        "{said}"
    );
    assert_eq!(db.count("plain"), 0);
}

#[test]
fn replace_empties_the_table_in_the_same_transaction() {
    let db = Database::new("replace");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    db.sql("CREATE SCHEMA sales; CREATE TABLE sales.deals (id bigint, name text, amount numeric(12,2), closed timestamptz, day date, won boolean, note text DEFAULT 'kept'); INSERT INTO sales.deals (id, name) SELECT g, 'old' FROM generate_series(1, 50) g");
    scratch.write("deals.csv", DEALS);
    let flow = load_flow(
        "deals.csv",
        json!({"connection": "pg", "schema": "sales", "table": "deals", "mode": "replace"}),
    );
    common::ran(&run(&scratch, &flow));
    assert_eq!(
        db.rows("SELECT id, name, note FROM sales.deals ORDER BY id"),
        [
            "1|Acme|kept",
            "2|Globex, \"EU\"|kept",
            "3|Tab\there|kept",
            "4||kept"
        ]
    );
}

#[test]
fn a_run_that_fails_leaves_the_table_as_it_was() {
    let db = Database::new("failed_run");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    db.sql("CREATE TABLE deals (id bigint PRIMARY KEY, amount numeric(12,2)); INSERT INTO deals VALUES (1, 1), (2, 2)");
    // 30,000 good records (several batches copied to the server) and a bad one last.
    let mut csv = String::from("id,amount\n");
    for i in 10..30_010 {
        csv += &format!("{i},{}.25\n", i % 1000);
    }
    csv += "99999,-1\n";
    scratch.write("many.csv", &csv);
    let flow = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "many.csv", "schema": {"amount": "decimal(12,2)"}}),
            ),
            node(
                "check",
                "transform.validate",
                json!({"rules": [
                {"field": "amount", "check": "non_negative", "action": "terminate_flow"}]}),
            ),
            node(
                "db",
                "destination.postgres",
                json!({"connection": "pg", "table": "deals", "mode": "replace"}),
            ),
        ],
        &[("src", "check"), ("check", "db")],
    );
    let out = run(&scratch, &flow);
    assert!(!out.status.success(), "{}", common::stdout(&out));
    assert_eq!(
        db.rows("SELECT id, amount FROM deals ORDER BY id"),
        ["1|1.00", "2|2.00"]
    );
    assert!(db.rows("SELECT to_regclass('_tributary_loads')") == ["∅"]);
}

#[test]
fn records_the_table_refuses_are_named_and_nothing_is_loaded() {
    let db = Database::new("refused");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    db.sql("CREATE TABLE deals (id bigint PRIMARY KEY, name text, amount numeric(12,2), closed timestamptz NOT NULL, day date, won boolean)");
    scratch.write("deals.csv", DEALS);
    let mut flow = load_flow(
        "deals.csv",
        json!({"connection": "pg", "table": "deals", "mode": "upsert", "keys": ["id"]}),
    );
    // Record 4 has no closing time, which the table's NOT NULL refuses.
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("deals refused the record id=4")
            && said.contains("null value in column \"closed\" of relation public.deals")
            && said.contains("nothing was loaded"),
        "{said}"
    );
    assert_eq!(db.count("deals"), 0);

    // A value out of the column's range: 12345678.90 does not fit numeric(6,2).
    db.sql("ALTER TABLE deals ALTER COLUMN closed DROP NOT NULL, ALTER COLUMN amount TYPE numeric(6,2)");
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("the record id=4") && said.contains("numeric field overflow"),
        "{said}"
    );
    assert_eq!(db.count("deals"), 0);

    // Without keys, the record is named by its place and its values.
    db.sql("ALTER TABLE deals ALTER COLUMN amount TYPE numeric(12,2); CREATE TABLE small (id bigint, name varchar(5), amount numeric(12,2), closed timestamptz, day date, won boolean)");
    flow["nodes"][1]["config"] = json!({"connection": "pg", "table": "small"});
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("record 2 {\"id\":2,\"name\":\"Globex, \\\"EU\\\"\"")
            && said.contains("value too long"),
        "{said}"
    );
    assert_eq!(db.count("small"), 0);
}

#[test]
fn new_fields_fail_before_loading_unless_columns_may_be_added() {
    let db = Database::new("evolve");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    db.sql("CREATE TABLE deals (id bigint, name text, owner text NOT NULL)");
    scratch.write("deals.csv", DEALS);
    let mut flow = load_flow("deals.csv", json!({"connection": "pg", "table": "deals"}));
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("has no column for the fields `amount` (numeric(12,2)), `closed` (timestamptz), `day` (date), `won` (boolean)")
            && said.contains("needs a value in `owner`"),
        "{said}"
    );
    db.sql("ALTER TABLE deals ALTER COLUMN owner DROP NOT NULL");
    flow["nodes"][1]["config"]["evolve"] = json!("add_columns");
    common::ran(&run(&scratch, &flow));
    assert_eq!(
        db.rows("SELECT id, amount, owner FROM deals ORDER BY id"),
        ["1|1200.50|∅", "2|99.99|∅", "3|0.01|∅", "4|12345678.90|∅"]
    );

    // `create_table: never` with no table.
    flow["nodes"][1]["config"] =
        json!({"connection": "pg", "table": "absent", "create_table": "never"});
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("the table public.absent does not exist, and `create_table` is never"),
        "{said}"
    );
}

#[test]
fn wrong_password_missing_database_no_permission_and_server_down_are_said() {
    let db = Database::new("refusals");
    // Roles belong to the server, not the database: one of this test's own.
    let reader = format!("reader_{}", std::process::id());
    db.sql(&format!("CREATE TABLE deals (id bigint, name text, amount numeric(12,2), closed timestamptz, day date, won boolean); DROP ROLE IF EXISTS {reader}; CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw'; GRANT SELECT ON deals TO {reader}; REVOKE CREATE ON SCHEMA public FROM PUBLIC"));
    let flow = load_flow("deals.csv", json!({"connection": "pg", "table": "deals"}));

    let scratch = Scratch::new();
    scratch.write("deals.csv", DEALS);
    db.connect(&scratch, SUPERUSER.0, "not-the-password");
    let said = failure(&scratch, &flow);
    assert!(
        said.contains("refused the user `tributary` and its password"),
        "{said}"
    );
    assert!(!said.contains("not-the-password"), "{said}");

    let scratch = Scratch::new();
    scratch.write("deals.csv", DEALS);
    db.connect(&scratch, &reader, "reader-pw");
    let said = failure(&scratch, &flow);
    assert!(
        said.contains(&format!("the user `{reader}` may not insert public.deals: GRANT INSERT ON \"public\".\"deals\" TO \"{reader}\"")),
        "{said}"
    );
    let other = load_flow("deals.csv", json!({"connection": "pg", "table": "fresh"}));
    let said = failure(&scratch, &other);
    assert!(
        said.contains("may not create tables in the schema `public`"),
        "{said}"
    );
    assert_eq!(db.count("deals"), 0);

    let scratch = Scratch::new();
    scratch.write("deals.csv", DEALS);
    let missing = db.other("no_such_db", db.port);
    missing.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    let said = failure(&scratch, &flow);
    assert!(said.contains("there is no database `no_such_db`"), "{said}");

    // A port nothing listens on: the server is down.
    let scratch = Scratch::new();
    scratch.write("deals.csv", DEALS);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let down = db.other(&db.name, port);
    down.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    let said = failure(&scratch, &flow);
    assert!(
        said.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}")),
        "{said}"
    );

    // `connection test` says who and where.
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    let test = tributary_in(&scratch, PASSPHRASE)
        .args(["connection", "test", "pg"])
        .output()
        .unwrap();
    let said = common::stdout(&test) + stderr(&test).as_str();
    assert!(
        test.status.success()
            && said.contains(&format!(
                "signed in as tributary to the database {}",
                db.name
            )),
        "{said}"
    );
}

#[test]
fn a_run_killed_while_it_commits_is_settled_by_the_next_run() {
    let db = Database::new("killed");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    scratch.write("deals.csv", DEALS);
    // Two destinations: the folder's commit renames its file. Killed at that rename,
    // the run stops before the table's load commits when the folder comes first, and
    // after it when the table comes first.
    let both = |table_first: bool| {
        let table = node(
            "db",
            "destination.postgres",
            json!({"connection": "pg", "table": "deals"}),
        );
        let folder = node(
            "out",
            "destination.local",
            json!({"folder": "out", "format": "jsonl"}),
        );
        let source = node(
            "deals",
            "source.file",
            json!({"path": "deals.csv", "schema": {"id": "integer"}}),
        );
        let (nodes, edges) = if table_first {
            (
                vec![source, table, folder],
                [("deals", "db"), ("deals", "out")],
            )
        } else {
            (
                vec![source, folder, table],
                [("deals", "out"), ("deals", "db")],
            )
        };
        scratch.flow("both.json", &flow(nodes, &edges))
    };
    let killed = |path: &std::path::Path| {
        let status = common::run_killed_at_rename_in(&scratch, Some(PASSPHRASE), path, 1);
        assert!(!status.success());
    };
    let run_again = |path: &std::path::Path| {
        let out = tributary_in(&scratch, PASSPHRASE)
            .args(["run", path.to_str().unwrap()])
            .env("TRIBUTARY_LOG", "info")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };

    // Killed before the load committed: the table is as it was, and the next run says
    // the load was rolled back, then loads the records once.
    let path = both(false);
    killed(&path);
    db.sql("SELECT 1");
    assert_eq!(db.rows("SELECT to_regclass('deals')"), ["∅"]);
    let log = run_again(&path);
    assert!(log.contains("was rolled back"), "{log}");
    assert_eq!(db.count("deals"), 4);

    // Killed after the load committed: the next run finds the load's row and finishes
    // the commit instead of counting it lost.
    db.sql("TRUNCATE deals; DELETE FROM _tributary_loads");
    let path = both(true);
    killed(&path);
    assert_eq!(db.count("deals"), 4);
    let log = run_again(&path);
    assert!(log.contains("finished publishing 1 file(s)"), "{log}");
    assert!(!log.contains("rolled back"), "{log}");
    // Then it ran the flow, whose insert reads the whole file again.
    assert_eq!(db.count("deals"), 8);
    assert_eq!(db.count("_tributary_loads"), 2);
}

#[test]
fn the_example_flow_upserts_the_demo_opportunities() {
    let db = Database::new("example");
    let scratch = Scratch::new();
    common::add_connection(
        &scratch,
        PASSPHRASE,
        "warehouse",
        "postgres",
        "basic",
        &[
            format!("host={}", db.host),
            format!("port={}", db.port),
            format!("database={}", db.name),
            format!("username={}", SUPERUSER.0),
        ],
        SUPERUSER.1,
    );
    let example = std::path::absolute("flows/demo-opportunities-to-postgres.json").unwrap();
    for _ in 0..2 {
        let out = tributary_in(&scratch, PASSPHRASE)
            .args(["run", example.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        let record = common::ran(&out);
        assert_eq!(record["records_written"], json!(5000), "{record}");
    }
    // The second run updated the first one's rows: each opportunity once.
    assert_eq!(db.count("crm.opportunities"), 5000);
    assert_eq!(
        db.rows("SELECT count(DISTINCT \"Id\"), count(*) FILTER (WHERE \"CreditCard\" !~ '^\\*{12}[0-9]{4}$') FROM crm.opportunities"),
        ["5000|0"]
    );
    assert_eq!(db.count("crm._tributary_loads"), 2);
}

#[test]
fn a_million_records_load_in_bounded_memory() {
    let db = Database::new("million");
    let scratch = Scratch::new();
    db.connect(&scratch, SUPERUSER.0, SUPERUSER.1);
    let path = scratch.flow(
        "million.json",
        &flow(
            vec![
                node(
                    "crm",
                    "source.demo_crm",
                    json!({"object": "Opportunity", "records": 1_000_000}),
                ),
                node(
                    "db",
                    "destination.postgres",
                    json!({"connection": "pg", "table": "opportunities"}),
                ),
            ],
            &[("crm", "db")],
        ),
    );
    let child = tributary_in(&scratch, PASSPHRASE)
        .args(["run", path.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, peak_kib, out) = common::wait_with_peak_rss(child);
    assert_eq!(code, 0, "{out}");
    assert_eq!(db.count("opportunities"), 1_000_000);
    let peak_mib = peak_kib / 1024;
    eprintln!("1,000,000 records loaded; peak memory {peak_mib} MiB");
    assert!(peak_mib < 200, "peak memory {peak_mib} MiB");
}

#[test]
fn records_travel_encrypted_and_the_servers_certificate_is_checked() {
    let db = Database::new("tls");
    let authority = std::env::var("TRIBUTARY_TEST_POSTGRES_CA")
        .expect("scripts/postgres.sh names the test server's authority");
    let scratch = Scratch::new();
    let add = |name: &str, host: &str, extra: &[String]| {
        let mut settings = vec![
            format!("host={host}"),
            format!("port={}", db.port),
            format!("database={}", db.name),
            format!("username={}", SUPERUSER.0),
        ];
        settings.extend_from_slice(extra);
        common::add_connection(
            &scratch,
            PASSPHRASE,
            name,
            "postgres",
            "basic",
            &settings,
            SUPERUSER.1,
        );
    };
    let test = |name: &str| {
        let out = tributary_in(&scratch, PASSPHRASE)
            .args(["connection", "test", name])
            .output()
            .unwrap();
        (out.status.success(), common::said(&out))
    };
    // The certificate is for `localhost`, signed by the test authority.
    add(
        "checked",
        "localhost",
        &[
            "sslmode=verify-full".into(),
            format!("root_cert={authority}"),
        ],
    );
    add("unchecked", "localhost", &["sslmode=require".into()]);
    add("untrusted", "localhost", &["sslmode=verify-full".into()]);
    add(
        "wrong-name",
        "127.0.0.1",
        &[
            "sslmode=verify-full".into(),
            format!("root_cert={authority}"),
        ],
    );
    let (ok, said) = test("checked");
    assert!(
        ok && said.contains("(PostgreSQL 15") && said.contains(", encrypted)"),
        "{said}"
    );
    let (ok, said) = test("unchecked");
    assert!(ok && said.contains(", encrypted)"), "{said}");
    let (ok, said) = test("untrusted");
    assert!(
        !ok && said.contains("the certificate of localhost:")
            && said.contains("is not trusted")
            && said.contains("root_cert"),
        "{said}"
    );
    let (ok, said) = test("wrong-name");
    assert!(!ok && said.contains("is not trusted"), "{said}");

    // A flow loads over the checked connection.
    scratch.write("deals.csv", DEALS);
    let mut flow = load_flow(
        "deals.csv",
        json!({"connection": "checked", "table": "deals"}),
    );
    common::ran(&run(&scratch, &flow));
    assert_eq!(db.count("deals"), 4);
    flow["nodes"][1]["config"]["connection"] = json!("unchecked");
    common::ran(&run(&scratch, &flow));
    assert_eq!(db.count("deals"), 8);

    // Unencrypted is refused for any host but this machine, before anything is sent.
    add("far", "db.example.com", &["sslmode=disable".into()]);
    let (ok, said) = test("far");
    assert!(
        !ok && said
            .contains("would send the password and the records to db.example.com unencrypted"),
        "{said}"
    );
}
