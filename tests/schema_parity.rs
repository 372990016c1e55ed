//! The two migration trees make the same schema, and the store runs on PostgreSQL.
//!
//! A fresh SQLite database and a fresh PostgreSQL database are migrated through the store
//! (`Store::open` + `migrate`); from each we read the tables, their columns (name, nullability,
//! a type class), primary keys, indexes (unique or not, columns or expressions, partial
//! predicates), foreign keys, the applied migration versions and every seed row. Both are
//! compared with each other and with the diesel schema (src/store/schema.rs), whose types also
//! fix the exact PostgreSQL column types (BigInt → bigint, Integer → integer, …). A drift fails
//! with the lines that differ.
//!
//! PostgreSQL comes from tests/pg (TICKETMILTER_TEST_PG or a private cluster); no skipping.

mod pg;

use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ticketmilter::Options;
use ticketmilter::model::{Envelope, Verdict};
use ticketmilter::store::{self, Store, StoreOptions};

// ---------------------------------------------------------------------------------------------
// Reading a schema
// ---------------------------------------------------------------------------------------------

/// A direct connection to either backend (not the store's pool: introspection only).
enum Db {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    decl: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    not_null: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    uniq: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    origin: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    sql: Option<String>,
}

#[derive(QueryableByName)]
struct SqliteFk {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    ref_table: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    from_col: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    to_col: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    on_delete: String,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    decl: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    not_null: bool,
}

#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    uniq: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    from_constraint: bool,
    #[diesel(sql_type = diesel::sql_types::Text)]
    def: String,
}

impl Db {
    fn load<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        let r = match self {
            Db::Sqlite(c) => diesel::sql_query(sql).load::<T>(c),
            Db::Pg(c) => diesel::sql_query(sql).load::<T>(c),
        };
        r.unwrap_or_else(|e| panic!("{} query failed: {e}\n{sql}", self.backend()))
    }

    fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Pg(_) => "PostgreSQL",
        }
    }
}

/// Type classes both backends share (what diesel's MultiConnection can map).
fn sqlite_class(decl: &str) -> String {
    let d = decl.to_ascii_uppercase();
    match d.as_str() {
        "INTEGER" | "BIGINT" | "INT" | "SMALLINT" => "integer",
        "TEXT" => "text",
        "BOOLEAN" => "bool",
        "TIMESTAMP" => "timestamp",
        "BLOB" => "binary",
        "DOUBLE PRECISION" | "REAL" | "DOUBLE" => "real",
        _ => return format!("unknown({decl})"),
    }
    .to_string()
}

fn pg_class(data_type: &str) -> String {
    match data_type {
        "bigint" | "integer" | "smallint" => "integer",
        "text" => "text",
        "boolean" => "bool",
        "timestamp without time zone" => "timestamp",
        "bytea" => "binary",
        "double precision" | "real" => "real",
        other => return format!("unknown({other})"),
    }
    .to_string()
}

fn diesel_class(ty: &str) -> &'static str {
    match ty {
        "BigInt" | "Integer" | "SmallInt" => "integer",
        "Text" => "text",
        "Bool" => "bool",
        "Timestamp" => "timestamp",
        "Binary" => "binary",
        "Double" | "Float" => "real",
        other => panic!("src/store/schema.rs: diesel type {other} has no class here; extend the test"),
    }
}

/// The PostgreSQL type diesel expects for a diesel SQL type.
fn diesel_pg_type(ty: &str) -> &'static str {
    match ty {
        "BigInt" => "bigint",
        "Integer" => "integer",
        "SmallInt" => "smallint",
        "Text" => "text",
        "Bool" => "boolean",
        "Timestamp" => "timestamp without time zone",
        "Binary" => "bytea",
        "Double" => "double precision",
        "Float" => "real",
        other => panic!("src/store/schema.rs: diesel type {other} has no PostgreSQL type here; extend the test"),
    }
}

/// Expressions as both backends print them: lower case, no white space, no casts PostgreSQL
/// adds (`''::text`), no redundant outer parentheses.
fn norm_expr(s: &str) -> String {
    let casts = regex::Regex::new(r"::[a-z_]+( [a-z_]+)*").unwrap();
    let mut e: String = casts.replace_all(&s.to_ascii_lowercase(), "").chars().filter(|c| !c.is_whitespace()).collect();
    e = e.replace('"', "");
    loop {
        let Some(inner) = e.strip_prefix('(').and_then(|x| x.strip_suffix(')')) else { break };
        if balanced(inner) {
            e = inner.to_string();
        } else {
            break;
        }
    }
    e
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// From `CREATE [UNIQUE] INDEX n ON t [USING btree] (cols) [WHERE pred]`: (cols, pred).
fn parse_index_sql(sql: &str) -> (String, String) {
    let lower = sql.to_ascii_lowercase();
    let on = lower.find(" on ").unwrap_or_else(|| panic!("unexpected index definition: {sql}"));
    let open = on + sql[on..].find('(').unwrap_or_else(|| panic!("unexpected index definition: {sql}"));
    let mut depth = 0;
    let mut close = open;
    for (i, c) in sql[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let cols = &sql[open + 1..close];
    let rest = sql[close + 1..].trim();
    let pred = if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case("where") { norm_expr(&rest[5..]) } else { String::new() };
    let cols = split_top_level(cols).iter().map(|c| norm_expr(c)).collect::<Vec<_>>().join(", ");
    (cols, pred)
}

fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn ident(s: &str) -> &str {
    assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "unexpected identifier {s:?}");
    s
}

/// One schema as sorted lines (the unit of comparison), plus the exact PostgreSQL types.
#[derive(Default)]
struct Schema {
    lines: BTreeSet<String>,
    /// table → (column, class) in column order, for building row queries.
    columns: BTreeMap<String, Vec<(String, String)>>,
    /// `pgtype t.c <type>` lines (PostgreSQL only).
    pg_types: BTreeSet<String>,
}

fn read_schema(db: &mut Db) -> Schema {
    let mut s = Schema::default();
    let tables: Vec<String> = match db {
        Db::Sqlite(_) => db.load::<Name>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND name <> '__diesel_schema_migrations'",
        ),
        Db::Pg(_) => db.load::<Name>(
            "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' AND table_name <> '__diesel_schema_migrations'",
        ),
    }
    .into_iter()
    .map(|n| n.name)
    .collect();

    for t in &tables {
        let t = ident(t);
        s.lines.insert(format!("table {t}"));
        let mut cols = Vec::new();
        match db {
            Db::Sqlite(_) => {
                let info = db.load::<SqliteColumn>(&format!(
                    "SELECT name, type AS decl, \"notnull\" AS not_null, pk FROM pragma_table_info('{t}') ORDER BY cid"
                ));
                let mut pk: Vec<(i64, String)> = Vec::new();
                for c in info {
                    let class = sqlite_class(&c.decl);
                    // A primary key column cannot hold NULL in PostgreSQL; in SQLite only the
                    // INTEGER PRIMARY KEY (rowid) one is enforced, yet the store never writes NULL
                    // there (the diesel schema says not null): compare as NOT NULL.
                    let nullable = c.not_null == 0 && c.pk == 0;
                    s.lines.insert(format!("column {t}.{} {class}{}", c.name, if nullable { " null" } else { " not null" }));
                    if c.pk > 0 {
                        pk.push((c.pk, c.name.clone()));
                    }
                    cols.push((c.name, class));
                }
                pk.sort();
                s.lines.insert(format!("pk {t} ({})", pk.into_iter().map(|p| p.1).collect::<Vec<_>>().join(", ")));

                for ix in db.load::<SqliteIndex>(&format!(
                    "SELECT il.name AS name, il.\"unique\" AS uniq, il.origin AS origin, m.sql AS sql \
                     FROM pragma_index_list('{t}') il LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = il.name"
                )) {
                    if ix.origin == "pk" {
                        continue;
                    }
                    let (cols, pred, name) = match &ix.sql {
                        Some(sql) => {
                            let (c, p) = parse_index_sql(sql);
                            (c, p, ix.name.clone())
                        }
                        None => {
                            let names = db.load::<Name>(&format!("SELECT name FROM pragma_index_info('{}') ORDER BY seqno", ident(&ix.name)));
                            (names.into_iter().map(|n| n.name).collect::<Vec<_>>().join(", "), String::new(), "<constraint>".to_string())
                        }
                    };
                    s.lines.insert(index_line(t, ix.uniq != 0, &cols, &pred, &name));
                }

                let mut fks: BTreeMap<i64, (String, Vec<String>, Vec<String>, String)> = BTreeMap::new();
                for fk in db.load::<SqliteFk>(&format!(
                    "SELECT id, \"table\" AS ref_table, \"from\" AS from_col, \"to\" AS to_col, on_delete \
                     FROM pragma_foreign_key_list('{t}') ORDER BY id, seq"
                )) {
                    let e = fks.entry(fk.id).or_insert_with(|| (fk.ref_table.clone(), vec![], vec![], fk.on_delete.clone()));
                    e.1.push(fk.from_col);
                    e.2.push(fk.to_col.unwrap_or_else(|| "<pk>".into()));
                }
                for (_, (rt, from, to, del)) in fks {
                    s.lines.insert(format!("fk {t} ({}) -> {rt} ({}) on delete {}", from.join(", "), to.join(", "), del.to_ascii_lowercase()));
                }
            }
            Db::Pg(_) => {
                for c in db.load::<PgColumn>(&format!(
                    "SELECT column_name::text AS name, data_type::text AS decl, (is_nullable = 'NO') AS not_null \
                     FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{t}' \
                     ORDER BY ordinal_position"
                )) {
                    let class = pg_class(&c.decl);
                    s.lines.insert(format!("column {t}.{} {class}{}", c.name, if c.not_null { " not null" } else { " null" }));
                    s.pg_types.insert(format!("pgtype {t}.{} {}", c.name, c.decl));
                    cols.push((c.name, class));
                }
                let pk = db.load::<Name>(&format!(
                    "SELECT k.column_name::text AS name FROM information_schema.table_constraints tc \
                     JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name \
                       AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name \
                     WHERE tc.table_schema = current_schema() AND tc.table_name = '{t}' AND tc.constraint_type = 'PRIMARY KEY' \
                     ORDER BY k.ordinal_position"
                ));
                s.lines.insert(format!("pk {t} ({})", pk.into_iter().map(|p| p.name).collect::<Vec<_>>().join(", ")));

                for ix in db.load::<PgIndex>(&format!(
                    "SELECT i.relname::text AS name, x.indisunique AS uniq, \
                       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid \
                               AND c.contype = 'u') AS from_constraint, \
                       pg_get_indexdef(x.indexrelid) AS def \
                     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                     WHERE x.indrelid = '{t}'::regclass AND NOT x.indisprimary"
                )) {
                    let (cols, pred) = parse_index_sql(&ix.def);
                    let name = if ix.from_constraint { "<constraint>".to_string() } else { ix.name.clone() };
                    s.lines.insert(index_line(t, ix.uniq, &cols, &pred, &name));
                }

                let fk_re = regex::Regex::new(r"^FOREIGN KEY \(([^)]*)\) REFERENCES ([\w.]+)\(([^)]*)\)(.*)$").unwrap();
                for d in db.load::<Name>(&format!(
                    "SELECT pg_get_constraintdef(oid) AS name FROM pg_constraint WHERE conrelid = '{t}'::regclass AND contype = 'f'"
                )) {
                    let m = fk_re.captures(&d.name).unwrap_or_else(|| panic!("unexpected foreign key {:?}", d.name));
                    let rest = m[4].to_ascii_lowercase();
                    let del = ["cascade", "set null", "set default", "restrict"]
                        .into_iter()
                        .find(|a| rest.contains(&format!("on delete {a}")))
                        .unwrap_or("no action");
                    let rt = m[2].rsplit('.').next().unwrap().to_string();
                    s.lines.insert(format!("fk {t} ({}) -> {rt} ({}) on delete {del}", norm_list(&m[1]), norm_list(&m[3])));
                }
            }
        }
        s.columns.insert(t.to_string(), cols);
    }

    for v in db.load::<Name>("SELECT version AS name FROM __diesel_schema_migrations") {
        s.lines.insert(format!("migration {}", v.name));
    }

    // Seed rows: counts and contents, values rendered alike on both backends.
    for (t, cols) in s.columns.clone() {
        let n = db.load::<Count>(&format!("SELECT count(*) AS n FROM \"{t}\""))[0].n;
        s.lines.insert(format!("rows {t} {n}"));
        if n == 0 {
            continue;
        }
        let exprs: Vec<String> = cols
            .iter()
            .map(|(c, class)| match class.as_str() {
                "bool" => format!("CASE WHEN \"{c}\" IS NULL THEN 'NULL' WHEN \"{c}\" THEN 'true' ELSE 'false' END"),
                "integer" => format!("COALESCE(CAST(\"{c}\" AS TEXT), 'NULL')"),
                "real" => format!("COALESCE(CAST(CAST(ROUND(\"{c}\" * 1000) AS BIGINT) AS TEXT), 'NULL')"),
                "text" => format!("COALESCE('''' || \"{c}\" || '''', 'NULL')"),
                // Defaults such as CURRENT_TIMESTAMP differ by the moment: only NULL or not.
                "timestamp" => format!("CASE WHEN \"{c}\" IS NULL THEN 'NULL' ELSE '<time>' END"),
                "binary" => format!("COALESCE('<' || CAST(length(\"{c}\") AS TEXT) || ' bytes>', 'NULL')"),
                other => panic!("no rendering for class {other} ({t}.{c})"),
            })
            .collect();
        let sql = format!("SELECT {} AS row FROM \"{t}\"", exprs.join(" || ' | ' || "));
        for r in db.load::<Row>(&sql) {
            s.lines.insert(format!("row {t}: {}", r.row));
        }
    }
    s
}

fn norm_list(s: &str) -> String {
    s.split(',').map(|x| x.trim().trim_matches('"')).collect::<Vec<_>>().join(", ")
}

fn index_line(t: &str, unique: bool, cols: &str, pred: &str, name: &str) -> String {
    format!(
        "index {t} {}({cols}){} [{name}]",
        if unique { "unique " } else { "" },
        if pred.is_empty() { String::new() } else { format!(" where {pred}") }
    )
}

/// The diesel schema (src/store/schema.rs) as `table`, `column` and `pk` lines, and the exact
/// PostgreSQL types its SQL types need.
fn diesel_schema() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = include_str!("../src/store/schema.rs");
    let head = regex::Regex::new(r"^\s*(\w+) \(([^)]*)\) \{\s*$").unwrap();
    let col = regex::Regex::new(r"^\s*(\w+) -> (Nullable<(\w+)>|(\w+)),\s*$").unwrap();
    let (mut lines, mut types) = (BTreeSet::new(), BTreeSet::new());
    let mut table: Option<String> = None;
    let mut in_macro = false;
    for line in text.lines() {
        if line.starts_with("diesel::table!") {
            in_macro = true;
            continue;
        }
        if !in_macro {
            continue;
        }
        if let Some(m) = head.captures(line) {
            let t = m[1].to_string();
            lines.insert(format!("table {t}"));
            lines.insert(format!("pk {t} ({})", norm_list(&m[2])));
            table = Some(t);
        } else if let (Some(t), Some(m)) = (&table, col.captures(line)) {
            let (ty, nullable) = match (m.get(3), m.get(4)) {
                (Some(inner), _) => (inner.as_str(), true),
                (_, Some(plain)) => (plain.as_str(), false),
                _ => unreachable!(),
            };
            lines.insert(format!("column {t}.{} {}{}", &m[1], diesel_class(ty), if nullable { " null" } else { " not null" }));
            types.insert(format!("pgtype {t}.{} {}", &m[1], diesel_pg_type(ty)));
        } else if line.trim() == "}" && table.is_some() {
            table = None;
        } else if line.starts_with('}') {
            in_macro = false;
        }
    }
    assert!(lines.len() > 100, "src/store/schema.rs could not be read ({} lines)", lines.len());
    (lines, types)
}

/// Lines only in `a` and only in `b`, as a readable report (empty when equal).
fn diff(a_name: &str, a: &BTreeSet<String>, b_name: &str, b: &BTreeSet<String>) -> String {
    let only_a: Vec<&String> = a.difference(b).collect();
    let only_b: Vec<&String> = b.difference(a).collect();
    if only_a.is_empty() && only_b.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    if !only_a.is_empty() {
        out.push_str(&format!("  only in {a_name}:\n"));
        for l in only_a {
            out.push_str(&format!("    {l}\n"));
        }
    }
    if !only_b.is_empty() {
        out.push_str(&format!("  only in {b_name}:\n"));
        for l in only_b {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

fn only_kinds(s: &BTreeSet<String>, kinds: &[&str]) -> BTreeSet<String> {
    s.iter().filter(|l| kinds.iter().any(|k| l.starts_with(&format!("{k} ")))).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Fresh, migrated databases
// ---------------------------------------------------------------------------------------------

struct Pair {
    _dir: tempfile::TempDir,
    sqlite_path: String,
    pg_url: String,
}

fn migrated_pair() -> Pair {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_path = dir.path().join("parity.db").to_str().unwrap().to_string();
    let sq = Store::open(&format!("sqlite:{sqlite_path}"), StoreOptions::default()).expect("open SQLite");
    let applied_sqlite = sq.migrate().expect("migrate SQLite");
    let pg_url = pg::fresh_database();
    let pgs = Store::open(&pg_url, StoreOptions::default()).expect("open PostgreSQL");
    assert!(!pgs.pending_migrations().expect("pending on PostgreSQL").is_empty());
    let applied_pg = pgs.migrate().unwrap_or_else(|e| panic!("migrating PostgreSQL failed: {e}"));
    assert_eq!(applied_sqlite, applied_pg, "both backends apply the same migration versions");
    assert_eq!(pgs.pending_migrations().unwrap(), Vec::<String>::new());
    assert_eq!(pgs.migrate().unwrap(), Vec::<String>::new(), "a second migrate applies nothing");
    Pair { _dir: dir, sqlite_path, pg_url }
}

fn sqlite_conn(path: &str) -> Db {
    Db::Sqlite(SqliteConnection::establish(path).expect("SQLite connection"))
}

fn pg_conn(url: &str) -> Db {
    Db::Pg(pg::connect(url))
}

fn assert_same_schema(sqlite: &Schema, postgres: &Schema) {
    let (diesel_lines, diesel_types) = diesel_schema();
    let mut report = String::new();
    let d = diff("sql/sqlite (SQLite)", &sqlite.lines, "sql/postgres (PostgreSQL)", &postgres.lines);
    if !d.is_empty() {
        report.push_str(&format!("The migrated SQLite and PostgreSQL schemas differ:\n{d}"));
    }
    let shape = ["table", "column", "pk"];
    let d = diff("src/store/schema.rs", &diesel_lines, "sql/sqlite (SQLite)", &only_kinds(&sqlite.lines, &shape));
    if !d.is_empty() {
        report.push_str(&format!("The diesel schema and the SQLite migrations differ:\n{d}"));
    }
    let d = diff("src/store/schema.rs", &diesel_lines, "sql/postgres (PostgreSQL)", &only_kinds(&postgres.lines, &shape));
    if !d.is_empty() {
        report.push_str(&format!("The diesel schema and the PostgreSQL migrations differ:\n{d}"));
    }
    let d = diff("src/store/schema.rs (types diesel needs)", &diesel_types, "sql/postgres (PostgreSQL)", &postgres.pg_types);
    if !d.is_empty() {
        report.push_str(&format!("PostgreSQL column types do not match the diesel types:\n{d}"));
    }
    assert!(report.is_empty(), "schema drift\n{report}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn sqlite_and_postgres_migrations_make_the_same_schema() {
    let pair = migrated_pair();
    let sqlite = read_schema(&mut sqlite_conn(&pair.sqlite_path));
    let postgres = read_schema(&mut pg_conn(&pair.pg_url));
    // Sanity: the reading itself found what it should (a broken query would compare empty sets).
    for s in [&sqlite, &postgres] {
        assert!(s.lines.contains("table tickets"));
        assert!(s.lines.contains("pk tickets (id)"));
        assert!(s.lines.contains("index companies unique (lower(name)) [companies_name]"), "{:?}", s.lines.iter().filter(|l| l.starts_with("index companies")).collect::<Vec<_>>());
        assert!(s.lines.contains("index outbox unique (message_id) where message_id<>'' [outbox_message_id]"));
        assert!(s.lines.contains("index processed_messages unique (mailbox_id, dedup_key) [<constraint>]"));
        assert!(s.lines.contains("rows queues 3"));
        assert!(s.lines.contains("row queues: 1 | 'Service Desk' | true | true"), "{:?}", s.lines.iter().filter(|l| l.starts_with("row queues")).collect::<Vec<_>>());
    }
    assert_same_schema(&sqlite, &postgres);
    pg::drop_database(&pair.pg_url);
}

#[test]
fn seeded_tables_keep_inserting_after_their_fixed_ids() {
    // Seeds insert fixed ids; PostgreSQL identity columns must have moved past them, as SQLite's
    // rowid does, or the first admin insert fails with a duplicate key.
    let pair = migrated_pair();
    for db in [&mut sqlite_conn(&pair.sqlite_path), &mut pg_conn(&pair.pg_url)] {
        for (table, cols, values) in [
            ("queues", "name", "'Q new'"),
            ("statuses", "name", "'S new'"),
            ("priorities", "name", "'P new'"),
            ("sources", "name", "'So new'"),
            ("issue_types", "name", "'I new'"),
            ("sub_issue_types", "issue_type_id, name", "1, 'Sub new'"),
            ("roles", "name", "'R new'"),
            ("work_types", "name", "'W new'"),
            ("notification_templates", "name, subject, body_text", "'t new', 's', 'b'"),
        ] {
            let before = db.load::<Count>(&format!("SELECT max(id) AS n FROM {table}"))[0].n;
            let sql = format!("INSERT INTO {table} ({cols}) VALUES ({values})");
            let r = match db {
                Db::Sqlite(c) => diesel::sql_query(&sql).execute(c),
                Db::Pg(c) => diesel::sql_query(&sql).execute(c),
            };
            r.unwrap_or_else(|e| panic!("{}: {sql}: {e}", db.backend()));
            let after = db.load::<Count>(&format!("SELECT max(id) AS n FROM {table}"))[0].n;
            assert_eq!(after, before + 1, "{}: {table}", db.backend());
        }
    }
    pg::drop_database(&pair.pg_url);
}

#[test]
fn down_migrations_remove_everything_and_up_again_gives_the_same_schema() {
    let pair = migrated_pair();
    let first = read_schema(&mut pg_conn(&pair.pg_url));
    let mut pgc = pg::connect(&pair.pg_url);
    let reverted = pgc.revert_all_migrations(store::POSTGRES_MIGRATIONS).unwrap_or_else(|e| panic!("PostgreSQL down.sql failed: {e}"));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/postgres")).unwrap().count();
    assert_eq!(reverted.len(), migrations);
    let mut sqc = SqliteConnection::establish(&pair.sqlite_path).unwrap();
    sqc.revert_all_migrations(store::SQLITE_MIGRATIONS).unwrap_or_else(|e| panic!("SQLite down.sql failed: {e}"));
    let mut pgdb = Db::Pg(pgc);
    let mut sqdb = Db::Sqlite(sqc);
    let left_pg = read_schema(&mut pgdb);
    let left_sqlite = read_schema(&mut sqdb);
    assert_eq!(left_pg.lines, BTreeSet::new(), "PostgreSQL: down.sql left these behind");
    assert_eq!(left_sqlite.lines, BTreeSet::new(), "SQLite: down.sql left these behind");
    let Db::Pg(mut pgc) = pgdb else { unreachable!() };
    pgc.run_pending_migrations(store::POSTGRES_MIGRATIONS).unwrap_or_else(|e| panic!("PostgreSQL up after down failed: {e}"));
    let again = read_schema(&mut Db::Pg(pgc));
    let d = diff("first migration", &first.lines, "after down and up", &again.lines);
    assert!(d.is_empty(), "PostgreSQL schema changed by down + up:\n{d}");
    pg::drop_database(&pair.pg_url);
}

/// Both trees have the same migrations (directory names), each with up.sql and down.sql, and
/// the PostgreSQL files keep the comments of the SQLite ones: every column comment in the same
/// order, and every section comment (the opening block of a file may name its backend).
#[test]
fn migration_trees_mirror_each_other_file_for_file_and_comment_for_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let list = |b: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(b))
            .unwrap_or_else(|e| panic!("sql/{b}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let (sq, pgl) = (list("sqlite"), list("postgres"));
    assert_eq!(sq, pgl, "sql/sqlite and sql/postgres must hold the same migrations");
    let mut problems = Vec::new();
    for m in &sq {
        for f in ["up.sql", "down.sql"] {
            let read = |b: &str| std::fs::read_to_string(root.join(b).join(m).join(f)).unwrap_or_else(|e| panic!("sql/{b}/{m}/{f}: {e}"));
            let (s, p) = (read("sqlite"), read("postgres"));
            let (s_col, s_sec) = comments(&s);
            let (p_col, p_sec) = comments(&p);
            if s_col != p_col {
                let missing: Vec<_> = s_col.iter().filter(|c| !p_col.contains(c)).collect();
                let extra: Vec<_> = p_col.iter().filter(|c| !s_col.contains(c)).collect();
                problems.push(format!("{m}/{f}: column comments differ; missing in postgres {missing:?}, extra {extra:?} (or the order differs)"));
            }
            let missing: Vec<_> = s_sec.iter().filter(|c| !p_sec.contains(*c)).collect();
            if !missing.is_empty() {
                problems.push(format!("{m}/{f}: comments missing in postgres: {missing:?}"));
            }
            for bad in ["INSERT OR", "AUTOINCREMENT", "datetime(", "strftime(", "PRAGMA", " BLOB"] {
                if p.lines().any(|l| l.split("--").next().unwrap().contains(bad)) {
                    problems.push(format!("sql/postgres/{m}/{f}: SQLite-only syntax {bad:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// (comments after code on the same line, in order; comment lines after a file's opening block)
fn comments(sql: &str) -> (Vec<String>, BTreeSet<String>) {
    let (mut trailing, mut standalone) = (Vec::new(), BTreeSet::new());
    let mut opening = true;
    for line in sql.lines() {
        let Some((code, c)) = line.split_once("--") else {
            opening = false;
            continue;
        };
        let c = c.trim().to_string();
        if c.chars().all(|ch| ch == '-') {
            continue;
        }
        if code.trim().is_empty() {
            if !opening {
                standalone.insert(c);
            }
        } else {
            opening = false;
            trailing.push(c);
        }
    }
    (trailing, standalone)
}

/// The store works on PostgreSQL: conf/example.sql loads, a message becomes ticket
/// T20261127.0001, the same message again is a duplicate, replies by number and by References
/// become notes. Run on SQLite too, as the reference.
#[test]
fn a_message_becomes_a_ticket_on_postgres_and_again_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite:{}", dir.path().join("engine.db").display());
    let pg_url = pg::fresh_database();
    for url in [sqlite_url.as_str(), pg_url.as_str()] {
        let backend = if url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" };
        let store = Store::open(url, StoreOptions::default()).unwrap_or_else(|e| panic!("{backend}: open: {e}"));
        store.migrate().unwrap_or_else(|e| panic!("{backend}: migrate: {e}"));
        let conf = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example.sql")).unwrap();
        store.write(|c| store::execute_script(c, &conf)).unwrap_or_else(|e| panic!("{backend}: conf/example.sql: {e}"));
        // Loading it twice changes nothing (every statement skips existing rows).
        store.write(|c| store::execute_script(c, &conf)).unwrap_or_else(|e| panic!("{backend}: conf/example.sql again: {e}"));
        let engine = ticketmilter::Engine::new(store.clone()).unwrap_or_else(|e| panic!("{backend}: engine: {e}"));

        let raw = b"From: Alice Example <alice@example.com>\r\nTo: support@msp.example\r\nSubject: Printer on 2nd floor prints blank pages\r\n\
Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <parity-1@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
Hello,\r\nthe printer only prints blank pages.\r\n";
        let mut env = Envelope::new(["support@msp.example"]);
        env.sender = "alice@example.com".into();
        env.received_at = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 27, 12, 0, 0).unwrap();

        let first = engine.process(&env, raw, Options::default()).unwrap_or_else(|e| panic!("{backend}: first delivery: {e}"));
        assert_eq!(first.len(), 1, "{backend}: {first:?}");
        assert_eq!(first[0].outcome, Verdict::Created, "{backend}: {:?}", first[0]);
        let number = first[0].object.as_ref().and_then(|o| o.ticket_number.clone());
        assert_eq!(number.as_deref(), Some("T20261127.0001"), "{backend}");
        assert_eq!(first[0].sender.as_ref().and_then(|s| s.company.clone()).as_deref(), Some("Example Corp"), "{backend}");

        let second = engine.process(&env, raw, Options::default()).unwrap_or_else(|e| panic!("{backend}: second delivery: {e}"));
        assert_eq!(second.len(), 1, "{backend}: {second:?}");
        assert_eq!(second[0].outcome, Verdict::Duplicate, "{backend}: {:?}", second[0]);
        assert_eq!(second[0].object, first[0].object, "{backend}");

        // Replies find the ticket by its number in the subject and by References (both look
        // tickets up with `IN (…)` lists).
        let by_number = b"From: alice@example.com\r\nTo: support@msp.example\r\nSubject: Re: [T20261127.0001] Printer\r\n\
Message-ID: <parity-2@example.com>\r\n\r\nStill blank.\r\n";
        let by_refs = b"From: alice@example.com\r\nTo: support@msp.example\r\nSubject: Re: Printer\r\n\
Message-ID: <parity-3@example.com>\r\nIn-Reply-To: <parity-1@example.com>\r\nReferences: <parity-1@example.com>\r\n\r\nAnd again.\r\n";
        for (what, raw) in [("number", &by_number[..]), ("references", &by_refs[..])] {
            let o = engine.process(&env, raw, Options::default()).unwrap_or_else(|e| panic!("{backend}: reply by {what}: {e}"));
            assert_eq!(o[0].outcome, Verdict::NoteAdded, "{backend}: reply by {what}: {:?}", o[0]);
            assert_eq!(o[0].object.as_ref().and_then(|x| x.ticket_number.clone()).as_deref(), Some("T20261127.0001"), "{backend}: {what}");
        }

        let mut db = if backend == "SQLite" { sqlite_conn(url.strip_prefix("sqlite:").unwrap()) } else { pg_conn(url) };
        assert_eq!(db.load::<Count>("SELECT count(*) AS n FROM tickets")[0].n, 1, "{backend}");
        assert_eq!(db.load::<Count>("SELECT count(*) AS n FROM ticket_notes")[0].n, 2, "{backend}");
        assert_eq!(db.load::<Count>("SELECT count(*) AS n FROM processed_messages")[0].n, 3, "{backend}");
    }
    pg::drop_database(&pg_url);
}

/// Daemons of several hosts starting at once: concurrent `migrate` calls on one PostgreSQL
/// database all succeed, and the migrations are applied exactly once between them.
#[test]
fn concurrent_migrations_on_postgres_apply_once() {
    let url = pg::fresh_database();
    let applied: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let store = Store::open(&url, StoreOptions::default()).expect("open");
                    store.migrate().unwrap_or_else(|e| panic!("concurrent migrate failed: {e}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = applied.iter().map(Vec::len).sum();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/postgres")).unwrap().count();
    assert_eq!(total, migrations, "each of the {migrations} migrations applied by exactly one caller: {applied:?}");
    pg::drop_database(&url);
}
